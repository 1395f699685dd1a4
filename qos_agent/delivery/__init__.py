"""Results -> points -> every sink, behind bounded queues and the durable store."""
