"""SLO evaluation: rolling windows, disruptions, hidden-from-uptime minutes."""
