"""Data protection: encryption at rest (keys, the envelope format), and the home's
protection state. Residency, erasure, retention and anonymization live beside it."""
