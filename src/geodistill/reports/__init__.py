"""Reports: the paper's tables and figures from the pipeline's outputs (stages `tables`, `figures`).

    geodistill tables --config params.yaml --results reports/results --out reports/tables
    geodistill figures --config params.yaml --eval data/eval --runs data --out reports/figures

runs.py picks each table's runs from params; tables.py writes Markdown, CSV and LaTeX beside the
published VIGOR numbers (published.yaml); figures.py and qualitative.py write PNGs.
"""
