"""The dataset's static HTML report (build.py gathers, html.py renders)."""
