"""The status page after real `bundle load`s: the coverage matrix shows what the loaded
selections asked for (missing in red), the rest greyed as "not selected"; a delta's row
shows the files it carried apart from the state it leads to."""

from __future__ import annotations

import json
import re

from browser import Cells
from click.testing import CliRunner
from tests.bundle.conftest import ARTIFACT, add_artifact, entries, make_cache

from fleetgap.bundle.writer import write_bundle
from fleetgap.cli import main
from fleetgap.ops.status_page import StatusPage
from fleetgap.packages.index import LoadOptions, load_index
from fleetgap.pgp.keys import SecretKey
from fleetgap.registry.holder import IndexHolder

ASKED = {
    "artifacts": [
        {"versions": ["9.1.0", "9.1.1"], "products": ["elastic-agent"], "platforms": "linux-x86_64"}
    ]
}


def run(*args: object):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_the_matrix_shows_what_was_asked_and_a_delta_row_its_two_sizes(tmp_path):
    key = SecretKey.generate("test elastic <elastic@example.invalid>")
    (tmp_path / "key.asc").write_text(key.public_key.armored)
    cache = make_cache(tmp_path / "cache", key)  # nginx 1.2.0 and the 9.1.0 linux agent
    data = tmp_path / "data"
    load = ("bundle", "load", "--data", data, "--allow-unsigned", "--key", tmp_path / "key.asc")
    full = tmp_path / "full.tar"
    write_bundle(cache, entries(cache, key), full, selection=ASKED, sequence=1)
    run(*load[:2], full, *load[2:])
    receipt = json.loads(run("bundle", "receipt", "--data", data).output)
    have = {f["path"]: f["sha256"] for f in receipt["files"]}
    add_artifact(cache, key, ARTIFACT.replace("x86_64", "arm64"), size=100_000)
    delta = tmp_path / "delta.tar"
    write_bundle(cache, entries(cache, key, have), delta, selection=ASKED, sequence=2, base=receipt)
    run(*load[:2], delta, *load[2:])

    index = load_index(LoadOptions(paths=(data / "packages",)))
    html = StatusPage(IndexHolder(index), data).render()
    parser = Cells()
    parser.feed(html)
    cells = {
        (a["data-version"], a["data-product"], a["data-platform"]): (text.strip(), a["class"])
        for tag, a, text in parser.found
        if tag == "td" and "data-platform" in a
    }
    assert cells[("9.1.0", "elastic-agent", "linux-x86_64")] == ("complete", "state complete")
    assert cells[("9.1.1", "elastic-agent", "linux-x86_64")] == ("missing", "state missing")
    # present although no selection asked for it: shown as it is
    assert cells[("9.1.0", "elastic-agent", "linux-arm64")][0] == "complete"
    for greyed in [("9.1.1", "elastic-agent", "linux-arm64"), ("9.1.0", "fleet-server",
                   "linux-x86_64"), ("9.1.0", "elastic-agent", "windows-x86_64")]:  # fmt: skip
        assert cells[greyed] == ("not selected", "state na"), greyed
    assert [cell for cell in cells.values() if cell[0] == "missing"] == [
        ("missing", "state missing")  # the one cell asked for and absent
    ]

    rows = re.findall(
        r'data-sequence="(\d+)">.*?<td class="carried">([^<]*)</td>\s*'
        r'<td class="state-size">([^<]*)</td>',
        html,
        re.DOTALL,
    )
    state_files = len(receipt["files"]) + 3  # the arm64 agent with its .sha512 and .asc
    assert [(seq, carried.split(",")[0], state.split(",")[0]) for seq, carried, state in rows] == [
        ("1", f"{len(receipt['files'])} files", f"{len(receipt['files'])} files"),
        ("2", "3 files", f"{state_files} files"),
    ]
