"""Results and their judgement: result files, intervals, the stopping rule, regressions, speed-ups,
A/B verdicts, tables, plots and the main job's answer.  Pure computation apart from rendering."""
