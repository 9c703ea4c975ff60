"""How long `fleetgap doctor` takes on a full closed side, one check at a time vs. a pool.

    python bench/doctor.py [--artifact-mb 8] [--packages 20]

Builds a data directory in a temporary folder (signed packages, the elastic-agent,
fleet-server and endpoint-security archives of one version for every platform the agent
ships, each with .sha512 and .asc; RSA key made here), serves it with `fleetgap serve --data`
over TLS from a private CA, then times the doctor with 1 and 8 workers, shallow and --deep.
Prints seconds per run; speed never fails anything.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "tests" / "ops")]

from artifacts.conftest import Upstream, rsa_key  # noqa: E402
from fleetgap.artifacts.catalogue import load_catalogue  # noqa: E402
from fleetgap.ops.certs import create_certificates  # noqa: E402
from fleetgap.ops.doctor import ARCHIVES, PRODUCTS, SETUP_PACKAGES, DoctorOptions, run_doctor  # noqa: E402
from fleetgap.pgp.package_signatures import sign_package  # noqa: E402

from builders import write_zip_package  # noqa: E402
from serving import fleetgap_serve  # noqa: E402

VERSION = "9.1.0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact-mb", type=float, default=8.0)
    parser.add_argument("--packages", type=int, default=20, help="packages beyond Fleet's three")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleetgap-bench-doctor-") as tmp:
        root = Path(tmp)
        key = rsa_key("bench <bench@test.invalid>")
        extra = [f"bench_pkg_{i}" for i in range(args.packages)]
        for name in (*SETUP_PACKAGES, *extra):
            sign_package(write_zip_package(root / "data" / "packages", name, "1.0.0"), key)
        publisher = Upstream(root / "data" / "downloads", recorder=None, server=None)  # type: ignore[arg-type]
        artifacts = load_catalogue().select(VERSION, PRODUCTS, (), ARCHIVES)
        block = b"\0" * int(args.artifact_mb * (1 << 20))
        for artifact in artifacts:
            publisher.publish(artifact.path, block, key)
        (root / "data" / "keys").mkdir()
        (root / "data" / "keys" / "GPG-KEY-elastic-agent").write_text(key.public_key.armored)
        tls = create_certificates(["127.0.0.1"], root / "tls")
        serve = ("--data", str(root / "data"), "-tls-cert", str(tls.cert), "-tls-key", str(tls.key))
        with fleetgap_serve(*serve, log_dir=root, scheme="https") as server:
            options = DoctorOptions(
                stack_version=VERSION,
                registry=server.url,
                artifacts=server.url + "/downloads/",
                key_url=server.url + "/GPG-KEY-elastic-agent",
                fleet_server=server.url,
                packages=tuple(extra),
                ca_cert=tls.ca_cert,
            )
            total_mb = len(artifacts) * args.artifact_mb
            print(
                f"{len(SETUP_PACKAGES) + len(extra)} packages, {len(artifacts)} archives "
                f"of {args.artifact_mb:g} MB ({total_mb:g} MB)"
            )
            for deep in (False, True):
                for workers in (1, 8):
                    started = time.perf_counter()
                    report = run_doctor(
                        DoctorOptions(**{**options.__dict__, "deep": deep, "workers": workers})
                    )
                    seconds = time.perf_counter() - started
                    verdict = "pass" if report.passed else "FAIL"
                    print(
                        f"{'--deep' if deep else 'shallow':8} workers={workers}: "
                        f"{len(report.results)} checks in {seconds:6.2f} s ({verdict})"
                    )


if __name__ == "__main__":
    main()
