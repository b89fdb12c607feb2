"""Audio: recognition, conversion, prompt synthesis, ticket-field extraction."""
