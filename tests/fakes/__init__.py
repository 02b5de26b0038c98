"""Recording fakes for the AWS calls moto 5.2.5 lacks; everything else is forwarded to moto.

See README.md for what each covers, why, and how to seed it.
"""

from ._base import Call, RecordingFake
from .codepipeline import PipelineRevisionStarts
from .ec2_deprecation import ImageDeprecationEc2
from .inspector2 import SEVERITIES, FakeInspector2, Inspector2State
from .servicecatalog import FakeServiceCatalog, ServiceCatalogState
from .shared_image_tags import SharedImageTagsEc2, SharedTags

__all__ = [
    "Call",
    "RecordingFake",
    "ImageDeprecationEc2",
    "PipelineRevisionStarts",
    "FakeInspector2",
    "Inspector2State",
    "SEVERITIES",
    "FakeServiceCatalog",
    "ServiceCatalogState",
    "SharedImageTagsEc2",
    "SharedTags",
]
