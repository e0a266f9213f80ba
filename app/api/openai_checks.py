"""An OpenAI chat completion request read for the service: the model it names, the options we
refuse rather than silently ignore, its messages as plain chat messages and its generation
options. Everything here runs before anything is generated or stored."""

from __future__ import annotations

from typing import Any

from app.api.openai_schemas import ChatCompletionRequest, OAIMessage
from app.errors import InvalidFieldError, NotFoundError
from app.llm.constrained import SchemaError, schema_of
from app.llm.types import MAX_LOGIT_BIAS
from app.service.completion import Completions, ServedModel
from app.service.turns import TurnOptions

MODEL_ALIAS = "memento"  # always names the served model, whatever it is (listed beside its id)
MAX_STOP = 4  # OpenAI's limit on stop sequences


def served_model(requested: str | None, engine: ServedModel) -> str:
    """The id of the model that answers `requested`: ours under its own id or the alias, else
    404 `model_not_found` as OpenAI answers (serving another model silently misleads a client
    that asked for a specific one). No `model` at all is accepted: our own clients omit it."""
    if requested is None or requested in (MODEL_ALIAS, engine.model_id):
        return str(engine.model_id)
    raise NotFoundError(
        f"The model `{requested}` does not exist or you do not have access to it. This "
        f"server serves `{engine.model_id}` (also as `{MODEL_ALIAS}`), see GET /v1/models",
        field="model",
        code="model_not_found",
    )


def _unsupported(param: str, why: str) -> InvalidFieldError:
    return InvalidFieldError(f"{param!r} is not supported: {why}", param, "unsupported_parameter")


async def check_response_format(fmt: dict[str, Any], model: Completions, session: bool) -> None:
    """`text`, or JSON by constrained decoding: the schema must compile before anything runs."""
    kind = fmt.get("type")
    if kind == "text":
        return
    if kind not in ("json_object", "json_schema"):
        raise InvalidFieldError(
            f"response_format.type must be 'text', 'json_object' or 'json_schema', got {kind!r}",
            "response_format.type",
        )
    if session:
        raise _unsupported("response_format", "not with X-Memento-Session (stateless calls only)")
    if not model.supports_json_schema:
        raise _unsupported("response_format", f"the {model.backend} backend cannot constrain")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise InvalidFieldError(
                "response_format.json_schema must be an object with a `schema` object",
                "response_format.json_schema",
            )
    schema = schema_of(fmt)
    assert schema is not None
    try:
        await model.check_json_schema(schema)
    except SchemaError as exc:
        raise InvalidFieldError(
            f"response_format.json_schema.schema cannot be used: {exc}",
            "response_format.json_schema.schema",
        ) from exc


async def check_supported(req: ChatCompletionRequest, model: Completions, session: bool) -> None:
    """Refuse, naming the param, every option we would otherwise silently ignore, and the
    combinations OpenAI itself refuses. Runs before anything is generated or stored."""
    no_tools = "the model does not call tools"
    for name in ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call"):
        if getattr(req, name) is not None:
            raise _unsupported(name, no_tools)
    if req.response_format is not None:
        await check_response_format(req.response_format, model, session)
    if req.logit_bias:
        check_logit_bias(req.logit_bias, model)
    if req.audio is not None or any(m != "text" for m in req.modalities or ()):
        raise _unsupported("audio" if req.audio is not None else "modalities", "text only")
    if req.stream_options is not None and not req.stream:
        raise InvalidFieldError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    if isinstance(req.stop, list) and len(req.stop) > MAX_STOP:
        raise InvalidFieldError(
            f"at most {MAX_STOP} stop sequences are allowed, got {len(req.stop)}", "stop"
        )
    if req.max_tokens is not None and req.max_completion_tokens is not None:
        raise InvalidFieldError(
            "max_tokens and max_completion_tokens cannot both be set (max_tokens is the "
            "deprecated name of max_completion_tokens)",
            "max_tokens",
        )
    if req.top_logprobs is not None and not req.logprobs:
        raise InvalidFieldError("top_logprobs requires logprobs to be true", "top_logprobs")
    if req.logprobs:
        if session:
            raise _unsupported("logprobs", "not with X-Memento-Session (stateless calls only)")
        if not model.supports_logprobs:
            raise _unsupported("logprobs", f"the {model.backend} backend does not report them")


def check_logit_bias(bias: dict[str, float], model: ServedModel) -> None:
    """OpenAI's `logit_bias`: token ids (as JSON keys) to values in [-100, 100]."""
    if len(bias) > MAX_LOGIT_BIAS:
        raise InvalidFieldError(
            f"logit_bias may hold at most {MAX_LOGIT_BIAS} tokens, got {len(bias)}", "logit_bias"
        )
    vocab = model.vocab_size
    for key, value in bias.items():
        field = f"logit_bias.{key}"
        if not key.isdigit() or (vocab is not None and int(key) >= vocab):
            top = "" if vocab is None else f" from 0 to {vocab - 1}"
            raise InvalidFieldError(f"logit_bias key {key!r} is not a token id{top}", field)
        if not -100 <= value <= 100:
            raise InvalidFieldError(f"logit_bias values must be in [-100, 100], got {value}", field)


def text_of(m: OAIMessage, i: int) -> str:
    if m.content is None:
        return ""
    if isinstance(m.content, str):
        return m.content
    texts = []
    for j, part in enumerate(m.content):
        if part.get("type") != "text":
            raise InvalidFieldError(
                f"content part type {part.get('type')!r} is not supported (text only)",
                field=f"messages.{i}.content.{j}.type",
            )
        texts.append(str(part.get("text", "")))
    return "".join(texts)


def chat_messages(req: ChatCompletionRequest) -> list[dict[str, str]]:
    out = []
    for i, m in enumerate(req.messages):
        if m.role in ("tool", "function"):
            raise InvalidFieldError(
                f"role {m.role!r} is not supported (no tool calling)", field=f"messages.{i}.role"
            )
        role = "system" if m.role == "developer" else m.role
        out.append({"role": role, "content": text_of(m, i)})
    return out


def options_of(req: ChatCompletionRequest) -> TurnOptions:
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    return TurnOptions(
        temperature=req.temperature,
        top_p=req.top_p,
        max_tokens=req.max_completion_tokens or req.max_tokens,
        seed=req.seed,
        stop=tuple(s for s in stop if s),
        frequency_penalty=req.frequency_penalty,
        presence_penalty=req.presence_penalty,
        repetition_penalty=req.repetition_penalty,
        logit_bias=tuple((int(k), float(v)) for k, v in (req.logit_bias or {}).items()),
    )
