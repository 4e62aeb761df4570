"""memlm: a memory-based language model (IGTree over a trie of all training contexts), CPU only.

>>> import memlm
>>> model = memlm.train("data/sample_train.txt", width=4)
>>> model.generate("It is a truth", max_new_tokens=10)
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("memlm")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

from memlm._core import ALGORITHMS, FORMAT_VERSION, VOTES, WEIGHTINGS  # noqa: E402
from memlm.errors import (  # noqa: E402
    CorpusError,
    InstanceFileError,
    MemlmError,
    ModelFormatError,
    TokenizerMismatchError,
)
from memlm.instances import write_instances  # noqa: E402
from memlm.model import Model, Prediction  # noqa: E402
from memlm.scoring import TokenScore, TokenScores  # noqa: E402
from memlm.shards import make_shard, merge, merge_shards  # noqa: E402
from memlm.tokenization import TokenizerSpec  # noqa: E402
from memlm.training import load, tokenize, train, train_instances, train_token_ids  # noqa: E402

__all__ = [
    "ALGORITHMS",
    "FORMAT_VERSION",
    "VOTES",
    "WEIGHTINGS",
    "CorpusError",
    "InstanceFileError",
    "MemlmError",
    "Model",
    "ModelFormatError",
    "Prediction",
    "TokenScore",
    "TokenScores",
    "TokenizerMismatchError",
    "TokenizerSpec",
    "__version__",
    "load",
    "make_shard",
    "merge",
    "merge_shards",
    "tokenize",
    "train",
    "train_instances",
    "train_token_ids",
    "write_instances",
]
