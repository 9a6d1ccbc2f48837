"""Send Phoenix the spans of a small failing agent run, over OTLP/HTTP, and print its trace id.

Run with the Python that has Phoenix (and so the OpenTelemetry SDK and OTLP exporter) installed,
not the project's: `python tests/phoenix_emit.py http://127.0.0.1:6006 PROJECT`. The run is of
this project's own making: a support agent asked to refund order 1234 looks the order up in the
wrong region, the lookup fails, and the agent tells the customer the refund was issued anyway.
"""

from __future__ import annotations

import json
import os
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

TASK = "Please refund order 1234, it arrived broken. I am in Germany."
TOOL_ERROR = "order 1234 not found in region us-east"
ANSWER = "Your refund for order 1234 has been issued; you will see it within 5 days."


def main(endpoint: str, project: str) -> str:
    resource = Resource.create({"openinference.project.name": project, "service.name": "support-agent"})
    provider = TracerProvider(resource=resource)
    key = os.environ.get("PHOENIX_API_KEY")  # a Phoenix with authentication on takes it as a bearer token
    headers = {"authorization": f"Bearer {key}"} if key else None
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", headers=headers)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("refinery-tests")
    with tracer.start_as_current_span("support_agent") as agent:
        agent.set_attribute("openinference.span.kind", "AGENT")
        agent.set_attribute("input.value", TASK)
        with tracer.start_as_current_span("ChatCompletion") as plan:
            plan.set_attribute("openinference.span.kind", "LLM")
            plan.set_attribute("llm.model_name", "gpt-4o-mini")
            plan.set_attribute("llm.input_messages.0.message.role", "system")
            plan.set_attribute("llm.input_messages.0.message.content", "You are a support agent. Use tools.")
            plan.set_attribute("llm.input_messages.1.message.role", "user")
            plan.set_attribute("llm.input_messages.1.message.content", TASK)
            plan.set_attribute("llm.output_messages.0.message.role", "assistant")
            call = "llm.output_messages.0.message.tool_calls.0.tool_call.function"
            plan.set_attribute(f"{call}.name", "lookup_order")
            plan.set_attribute(f"{call}.arguments", json.dumps({"order_id": "1234", "region": "us-east"}))
            plan.set_attribute("llm.token_count.prompt", 61)
            plan.set_attribute("llm.token_count.completion", 18)
        with tracer.start_as_current_span("lookup_order") as tool:
            tool.set_attribute("openinference.span.kind", "TOOL")
            tool.set_attribute("tool.name", "lookup_order")
            tool.set_attribute("input.value", json.dumps({"order_id": "1234", "region": "us-east"}))
            tool.record_exception(LookupError(TOOL_ERROR))
            tool.set_status(Status(StatusCode.ERROR, TOOL_ERROR))
        with tracer.start_as_current_span("ChatCompletion") as reply:
            reply.set_attribute("openinference.span.kind", "LLM")
            reply.set_attribute("llm.model_name", "gpt-4o-mini")
            reply.set_attribute("llm.input_messages.0.message.role", "tool")
            reply.set_attribute("llm.input_messages.0.message.content", f"Error: {TOOL_ERROR}")
            reply.set_attribute("llm.output_messages.0.message.role", "assistant")
            reply.set_attribute("llm.output_messages.0.message.content", ANSWER)
        agent.set_attribute("output.value", ANSWER)
        trace_id = format(agent.get_span_context().trace_id, "032x")
    provider.shutdown()  # flushes: every span has been sent when this returns
    return trace_id


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2]))
