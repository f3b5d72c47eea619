"""The dataset's static HTML report (gather.py reads the stores, build.py renders and writes the page)."""
