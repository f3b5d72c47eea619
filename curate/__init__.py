"""curate: data curation and active labeling for facial expression recognition."""

__version__ = "0.1.0"
