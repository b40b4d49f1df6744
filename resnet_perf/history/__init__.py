"""History over result files: points, change detection, trends and the report site with its charts."""
