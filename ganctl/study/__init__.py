"""Studies: a recipe and its variants, each trained over several seeds, compared with intervals.

spec.py     what a study is (base options, variants, seeds, metric), parsed from the command
            line or a TOML file, and its ``study.json`` in the study folder
runner.py   every (variant, seed) as an ordinary training run in the study folder; re-running continues
stats.py    mean, standard deviation, t intervals and Welch's test over seeds (SciPy)
results.py  the metric of each run, read through the run folder's owner; the table and JSON
search.py   the Optuna search (TPE over declared ranges, median pruning), an extra
plot.py     the study-<metric>.png plot (matplotlib)
"""
