"""Stage download (download@vigor|kitti, real data only): the pinned public label or split files
fetched and checked against their git blob ids, the user's archives (params data.archives)
checked and extracted safely; nothing unverified is left in the root.

    python -m stages.download vigor --config params.yaml --root /data/VIGOR
    geodistill download vigor --root /data/VIGOR --source Chicago=/data/Chicago.zip   # by hand
"""
from __future__ import annotations

from pathlib import Path

import typer

from geodistill.data.archives import ArchiveError
from geodistill.data.download import DownloadError, download_dataset, parse_sources
from stages.common import UserError, friendly, load, script


@friendly
def download(dataset: str = typer.Argument(..., help="vigor or kitti (a dataset of sources.yaml)"),
             root: Path = typer.Option(..., help="dataset root to fill (created if missing)"),
             config: Path = typer.Option(None, "--config", "-c", help="params file (stage download): the "
                                         "archives are its data.archives, the sources file its data.manifest"),
             source: list[str] = typer.Option(None, "--source", help="NAME=PATH_OR_URL, repeatable: an archive "
                                                  "you obtained (e.g. Chicago=/data/Chicago.zip) or a local "
                                                  "copy of a pinned file (its path under the root as NAME)"),
             manifest: Path = typer.Option(None, help="sources file to use instead of the packaged sources.yaml"),
             retries: int = typer.Option(5, help="retries per file after a connection error or 5xx answer")):
    """Obtain a real dataset: fetch pinned files (resumable, verified), extract archives safely."""
    if retries < 0:
        raise UserError(f"--retries must be >= 0, got {retries}")
    sources, pass_as = {}, "pass --source {name}=PATH_OR_URL"
    if config is not None:
        data = load(config).data
        if data.source != dataset:
            raise UserError(f"{config}: data.source is {data.source!r}, not {dataset!r}")
        sources, manifest = dict(data.archives), manifest or data.manifest
        pass_as = f"set data.archives.{{name}} in {config}"
    try:
        sources |= parse_sources(source or [])
        result = download_dataset(dataset, root, sources, manifest=manifest, retries=retries, pass_as=pass_as)
    except (DownloadError, ArchiveError) as e:
        raise UserError(str(e)) from None
    for name, what in result.items():
        typer.echo(f"{name}: {what}")
    typer.echo(f"{dataset} complete in {root}; check it with `geodistill verify-data --root {root}`")


if __name__ == "__main__":
    script(download)
