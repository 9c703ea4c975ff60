"""`fleetgap config KIND`: the settings snippets for Kibana, Fleet Server and agents."""

from __future__ import annotations

from pathlib import Path

import click

from fleetgap.ops.snippets import DEFAULT_GPG_KEY_PATH, SNIPPETS, Deployment, snippet


@click.command("config")
@click.argument("kind", type=click.Choice(SNIPPETS))
@click.option("--registry", help="The registry URL as Kibana reaches it.")
@click.option("--artifacts", help="The download source URL (…/downloads/) as agents reach it.")
@click.option("--key-url", help="The key URL (…/GPG-KEY-elastic-agent) for Fleet Server.")
@click.option("--url", help="defend: the server's base URL as endpoints reach it (no /downloads).")
@click.option(
    "--ca-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The private CA (PEM), as a path on the host that uses the snippet.",
)
@click.option("--proxy", help="Forward proxy (Kibana registryProxyUrl, agent proxy_url).")
@click.option("--name", default="fleetgap", show_default=True, help="Download source name.")
@click.option(
    "--default/--no-default", "is_default", default=True, help="Make it the default source."
)
@click.option("--proxy-id", help="A Fleet proxy id for the download source.")
@click.option(
    "--gpg-key-path",
    default=DEFAULT_GPG_KEY_PATH,
    show_default=True,
    help="Where Kibana reads the package verification key.",
)
def config(kind: str, **options: object) -> None:
    """Print the snippet for KIND: kibana (kibana.yml), fleet-server (fleet-server.yml),
    agent (elastic-agent.yml), download-source (JSON for Kibana's
    POST /api/fleet/agent_download_sources) or defend (the Elastic Defend policy's advanced
    settings for Linux, macOS and Windows; --ca-cert: the PEM text goes in the policy)."""
    click.echo(snippet(kind, Deployment(**options)), nl=False)  # type: ignore[arg-type]
