"""The request bodies, as pydantic models: strict (a number is not a string, a bool is not a number) and
closed (an unknown field is an error, so a misspelt option is never silently ignored).

The completion request takes OpenAI's fields; ``null`` stands for a field's default, as in OpenAI's API.
OpenAI's options that memlm does not implement (``suffix``, ``best_of``, ``logit_bias``, ``presence_penalty``,
``frequency_penalty``) are accepted only with the value that changes nothing, and refused otherwise.
``top_k`` is memlm's addition (0, the default, samples among all classes, as OpenAI's models do).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from memlm.serving.errors import APIError, validation_error

#: The most choices per prompt (``n``), choices in all (prompts x ``n``) and top log probabilities per token
#: (``logprobs``) a completion request may ask; the longest text and the most passages per token an
#: explanation request may ask (a request's answer must fit in memory however it is written).
MAX_N = 128
MAX_CHOICES = 1024
MAX_LOGPROBS = 20
MAX_EXPLAIN_CHARACTERS = 20_000
MAX_EVIDENCE = 20
#: Stop strings per request and characters per stop string at most (OpenAI takes up to 4).
MAX_STOPS = 4
MAX_STOP_CHARACTERS = 256
#: What ``prompt`` may be.
PROMPT_SHAPE = "give a string, a list of strings, a list of token ids or a list of lists of token ids"

Count = Annotated[int, Field(ge=0)]
Real = Annotated[float, Field(allow_inf_nan=False)]


class Body(BaseModel):
    """A request body: strict types, no unknown field."""

    model_config = ConfigDict(strict=True, extra="forbid")

    #: The model's name (its file's stem; ``GET /v1/models`` lists them).
    model: str


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    #: Send a last event with the usage counts (and no choices) before ``[DONE]``.
    include_usage: bool = False


class CompletionRequest(Body):
    """``POST /v1/completions``."""

    prompt: Any
    max_tokens: Count = 16
    temperature: Annotated[Real, Field(ge=0)] = 1.0
    top_p: Annotated[Real, Field(gt=0, le=1)] = 1.0
    top_k: Count = 0
    seed: Annotated[int, Field(ge=0, lt=2**64)] | None = None
    stop: Any = None
    n: Annotated[int, Field(ge=1, le=MAX_N)] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: Annotated[int, Field(ge=0, le=MAX_LOGPROBS)] | None = None
    echo: bool = False
    user: str | None = None
    # OpenAI's options that memlm does not implement: only their neutral values.
    suffix: str | None = None
    best_of: int | None = None
    logit_bias: dict | None = None
    presence_penalty: Real | None = None
    frequency_penalty: Real | None = None

    @field_validator("max_tokens", "temperature", "top_p", "top_k", "n", "stream", "echo", mode="before")
    @classmethod
    def _null_is_default(cls, value: object, info: ValidationInfo) -> object:
        return cls.model_fields[info.field_name].default if value is None else value

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: object) -> object:
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value:
            if all(isinstance(v, str) for v in value) or all(_is_id(v) for v in value):
                return value
            if all(isinstance(v, list) and all(_is_id(i) for i in v) for v in value):
                return value
        raise ValueError(PROMPT_SHAPE)

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: object) -> object:
        stops = [value] if isinstance(value, str) else value
        if value is None:
            return value
        if not (isinstance(stops, list) and all(isinstance(v, str) for v in stops)):
            raise ValueError("give a string or a list of strings")
        if len(stops) > MAX_STOPS or any(len(v) > MAX_STOP_CHARACTERS for v in stops):
            raise ValueError(f"at most {MAX_STOPS} stop strings of at most {MAX_STOP_CHARACTERS} characters each")
        return value

    @model_validator(mode="after")
    def _unsupported(self) -> CompletionRequest:
        neutral = {
            "suffix": self.suffix in (None, ""),
            "best_of": self.best_of in (None, self.n),
            "logit_bias": not self.logit_bias,
            "presence_penalty": self.presence_penalty in (None, 0),
            "frequency_penalty": self.frequency_penalty in (None, 0),
        }
        refused = [name for name, ok in neutral.items() if not ok]
        if refused:
            raise ValueError(f"memlm does not implement {', '.join(refused)}: leave it out")
        choices = len(self.prompts()) * self.n
        if choices > MAX_CHOICES:
            raise ValueError(f"{choices:,} choices (prompts x n): at most {MAX_CHOICES:,} per request")
        return self

    def generated_tokens(self) -> int:
        """The tokens the request may generate in all: prompts x ``n`` x ``max_tokens``."""
        return len(self.prompts()) * self.n * self.max_tokens

    def prompts(self) -> list[str] | list[list[int]]:
        """The prompts, each a string or a list of ids."""
        if isinstance(self.prompt, str) or (self.prompt and _is_id(self.prompt[0])):
            return [self.prompt]
        return self.prompt


class ScoreRequest(Body):
    """``POST /v1/score``: per-token scores and the perplexity of ``text`` (``cache``: with the document
    cache, as :meth:`memlm.Model.score`)."""

    text: str
    cache: bool = True


class TokenizeRequest(Body):
    """``POST /tokenize``: the ids of ``prompt`` (vLLM's names)."""

    prompt: str


class DetokenizeRequest(Body):
    """``POST /detokenize``: the text of ``tokens``."""

    tokens: list[int]


class ExplainRequest(Body):
    """``POST /v1/explain``: as :meth:`memlm.Model.explain` (``generate`` is held to the server's token cap)."""

    text: Annotated[str, Field(max_length=MAX_EXPLAIN_CHARACTERS)]
    algorithm: str = "igtree"
    evidence: Annotated[int, Field(ge=0, le=MAX_EVIDENCE)] = 3
    generate: Count = 0
    cache: bool = True


Schema = TypeVar("Schema", bound=BaseModel)


def parsed(schema: type[Schema], body: bytes, content_type: str | None) -> Schema:
    """A request's body checked against ``schema``, read as FastAPI reads its routes' bodies (so that every route
    refuses a bad one alike): JSON when there is no content type or a JSON one, else the bytes themselves (which no
    schema takes); no body is no object. A 400 :class:`APIError` (:func:`validation_error`) otherwise."""
    value: object = None
    if body and (content_type is None or _is_json(content_type)):
        try:
            value = json.loads(body)
        except json.JSONDecodeError as e:
            raise validation_error(
                [{"type": "json_invalid", "loc": ("body", e.pos), "ctx": {"error": e.msg}}]
            ) from None
        except (ValueError, RecursionError) as e:  # not UTF-8, or nested too deep for the parser
            message = f"the request body is not valid JSON: {type(e).__name__}"
            raise APIError(400, message, None, "invalid_json") from None
    elif body:
        value = body
    try:
        return schema.model_validate(value)
    except ValidationError as e:
        raise validation_error(e.errors(include_url=False)) from None


def _is_json(content_type: str) -> bool:
    """Whether a Content-Type is JSON's: application/json or application/*+json (parameters aside)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
