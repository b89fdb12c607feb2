"""sipp as the hotline's test telephone network: callers, agents' phones, the emergency trunk."""
