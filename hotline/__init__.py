"""12345 hotline: configuration, command line and process runtime."""
