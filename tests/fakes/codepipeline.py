"""CodePipeline's StartPipelineExecution with `sourceRevisions`: moto 5.2.5 starts the pipeline but drops
the revisions (its execution reports none), so the request is checked against botocore's model, recorded
(`calls_to("start_pipeline_execution")`) and then started in moto, where a missing pipeline fails as AWS would."""

from __future__ import annotations

from typing import Any

from ._base import RecordingFake, faked


class PipelineRevisionStarts(RecordingFake):
    SERVICE = "codepipeline"
    FAKED = frozenset({"start_pipeline_execution"})

    @faked
    def _start_pipeline_execution(self, name: str, **params: Any) -> dict[str, Any]:
        started = self._inner.start_pipeline_execution(name=name)
        return {"pipelineExecutionId": started["pipelineExecutionId"]}
