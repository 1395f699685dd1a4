"""The run loop: which journeys run here, when, one run as a conversation, the agent, check."""
