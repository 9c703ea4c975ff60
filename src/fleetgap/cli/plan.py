"""`fleetgap plan upgrade`: the order of an air-gapped upgrade, measured where URLs are given."""

from __future__ import annotations

import json
from pathlib import Path

import click

from fleetgap.cli.console import echo
from fleetgap.cli.doctor import url_options
from fleetgap.ops.doctor import DoctorOptions
from fleetgap.ops.upgrade_plan import DONE, NOT_DONE, Plan, plan_upgrade


@click.group()
def plan() -> None:
    """Plans for operators."""


@plan.command()
@click.option("--from", "source", required=True, help="The stack version running now.")
@click.option("--to", "target", required=True, help="The stack version to upgrade to.")
@url_options
@click.option("--kibana", help="Kibana URL: step 2 is measured from its /api/status.")
@click.option(
    "--write-selections",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the bundle selection files of steps 1 and 3 into this directory.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def upgrade(
    source: str,
    target: str,
    kibana: str | None,
    write_selections: Path | None,
    as_json: bool,
    **urls: object,
) -> None:
    """The five steps from A to B: package registry, Stack with Kibana, artifact registry,
    Fleet Server, agents; with URLs each step is marked done or not done."""
    options = DoctorOptions(stack_version=target, **urls)  # type: ignore[arg-type]
    result = plan_upgrade(source, target, options, kibana)
    if write_selections is not None:
        write_selections.mkdir(parents=True, exist_ok=True)
        for step in result.steps:
            for name, text in step.files:
                (write_selections / name).write_text(text)
    if as_json:
        echo(json.dumps(result.as_dict(), indent=2))
        return
    print_plan(result)


def print_plan(result: Plan) -> None:
    marks = {DONE: "[done]", NOT_DONE: "[NOT DONE]"}
    echo(f"Upgrade plan {result.source} -> {result.target}\n")
    for step in result.steps:
        echo(f"{step.number}. {step.title}  {marks.get(step.state, '[not measured]')}")
        for command in step.commands:
            echo(f"     - {command}")
        echo(f"     before the next step, these doctor checks pass: {', '.join(step.gate)}")
        for line in step.evidence:
            echo(f"     measured: {line}")
        for name, text in step.files:
            echo(f"     selection {name}:")
            echo("".join(f"       {line}\n" for line in text.splitlines()), nl=False)
        echo()
