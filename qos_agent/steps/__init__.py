"""What every step kind shares, owned by the core so a new kind gets it without a line of its own:
the one probe wrapper (`measure`), `extract:` over what a kind yields (`extract`), and learning and
masking secrets over the whole result (`masking`). JSON bodies are read one way (`jsondoc`)."""
