"""Deploying an SSM Automation document whose scripts run the handlers package as an attachment.

SSM checks an attachment against the sha256 the document declares under `files:`; the repository copy
cannot know the digest of the package built at deploy time, so the deployed content adds it. Used by
the build account's factory documents and the workload accounts' isolation playbook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws
import yaml

from .handler_package import Package

HANDLERS_ATTACHMENT = "handlers.zip"  # automation/README.md: the handlers package, attached by name


def uses_attachment(content: Any) -> bool:
    """Whether any aws:executeScript step of the parsed document runs from the handlers attachment."""
    steps = content.get("mainSteps") if isinstance(content, Mapping) else None
    return any(
        isinstance(step, Mapping)
        and step.get("action") == "aws:executeScript"
        and (step.get("inputs") or {}).get("Attachment") == HANDLERS_ATTACHMENT
        for step in steps or ()
    )


def deployed_content(text: str, handlers: Package) -> str:
    """The document as deployed: unchanged, unless its scripts use the handlers attachment, whose
    checksum SSM verifies against the `files:` section added here."""
    content = yaml.safe_load(text)
    if not uses_attachment(content):
        return text
    return yaml.safe_dump(
        {**content, "files": {HANDLERS_ATTACHMENT: {"checksums": {"sha256": handlers.sha256}}}}, sort_keys=False
    )


def automation_document(
    resource_name: str,
    document_name: str,
    text: str,
    handlers: Package,
    handlers_url: str,
    handlers_object: pulumi.Resource,
    opts: pulumi.ResourceOptions,
    depends_on: Sequence[pulumi.Resource] = (),
) -> aws.ssm.Document:
    """The Automation document, attaching the handlers package (uploaded as `handlers_object`, at
    `handlers_url`) only when its scripts use it."""
    content = deployed_content(text, handlers)
    attach = content != text
    source = aws.ssm.DocumentAttachmentsSourceArgs(key="S3FileUrl", values=[handlers_url], name=HANDLERS_ATTACHMENT)
    return aws.ssm.Document(
        resource_name,
        name=document_name,
        document_type="Automation",
        document_format="YAML",
        content=content,
        attachments_sources=[source] if attach else None,
        opts=opts.merge(pulumi.ResourceOptions(depends_on=([handlers_object] if attach else []) + list(depends_on))),
    )
