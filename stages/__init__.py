"""The pipeline's stages: one thin module per dvc.yaml stage (read params, call the library,
write the outs), each runnable on its own and as a `geodistill` subcommand of the same name.

    python -m stages.index --config params.yaml --root data/world --out data/index.csv   # what dvc.yaml runs
    geodistill index --config params.yaml --root data/world --out data/index.csv         # the same function

The algorithms live in the library (src/geodistill/), which knows nothing about DVC or the command
line; stages/cli.py gathers the stages and a few tools (tools.py) into the `geodistill` app.
"""
