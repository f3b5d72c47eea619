"""Error analysis: label issues (cleanlab), model mistakes, clusters of errors, browsable views."""
