"""Entry point the Pulumi CLI runs for `pulumi preview --policy-pack policy`."""

import importlib
import importlib.util
import sys
from pathlib import Path

from pulumi_policy import EnforcementLevel, PolicyPack

# The CLI runs this folder with `runpy.run_path` (pulumi.policy's __main__), so this file belongs to no
# package, while the pack's modules import each other relatively and tests and tools import them as
# `policy.*`. Loading this folder as the package `policy` (importlib docs, "Importing a source file
# directly") keeps both and leaves the project root (estate, tools, handlers) off the pack's import path:
# the pack runs in its own venv with only its own folder. Already loaded under `python -m policy`.
if "policy" not in sys.modules:
    _here = Path(__file__).resolve().parent
    _spec = importlib.util.spec_from_file_location("policy", _here / "__init__.py", submodule_search_locations=[str(_here)])
    assert _spec is not None and _spec.loader is not None
    sys.modules["policy"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["policy"])

PolicyPack(
    "bakehouse",
    policies=importlib.import_module("policy.policies").POLICIES,
    enforcement_level=EnforcementLevel.MANDATORY,
    description="Bakehouse guardrails: encryption, no public exposure, least privilege, approved AMIs, tags.",
)
