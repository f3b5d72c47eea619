"""The ingest stage: source records -> decoded, hashed, scored samples in FiftyOne and SQL."""
