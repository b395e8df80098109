"""Sentence embeddings from a SentenceTransformer folder, in one pass per batch.

For each text the encoder returns

* the folder's own sentence embedding (mean of the last layer's token vectors,
  L2-normalised: what ``SentenceTransformer.encode`` and hence ``EyeImagingClassifier``
  compute for the default model), which ``model_head.pkl`` classifies;
* the same mean pooling of each of the last ``LAYERS`` layers, each normalised, side by
  side: the lower layers keep more of the wording, and in cross-validation a linear
  head on the four layers beats one on the last layer alone (docs/classifier.md).

Weights are rounded to fp16 and back as envision-classifier does on CPU, so the
embedding ``model_head.pkl`` sees here is the one ``EyeImagingClassifier`` computes.
Texts are sorted by length before batching so a batch pads to similar lengths.

``quantized=True`` (what the text head is built and run with, :data:`INT8`):
every linear layer of the backbone is then run in int8 (PyTorch's dynamic quantization,
one scale per output channel), which encodes about 1.3 times as fast on two cores
(bench section 5). Dynamic quantization gives each layer's input one scale per forward
pass, so a text's numbers depend a little on the texts and the padding batched with it;
the classifier therefore encodes each text alone (``batch_size=1``: model.ENCODER_BATCH),
and a record gets the same probability whatever it is classified with. Building and
cross-validation encode the training texts in batches of 64 (fixed by the texts and
their order, so a build is reproducible). The int8 embeddings differ from the fp32 ones
(cosine about 0.98), so the text head is trained and applied on the same quantized
encoder, and cross-validation scores it so (docs/classifier.md); ``model_head.pkl``,
which ``EyeImagingClassifier`` applies to its own fp32 embedding, is always fitted on
the unquantized one.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

LAYERS = 4  # the last four hidden layers of the backbone
WORKERS = 2  # forward passes run side by side (Encoder.encode)
# torch's thread count is one per process: two encoders sharing the cores out at once
# must not save and restore it across each other
_THREADS = threading.Lock()
INT8 = "int8 dynamic, per-channel weights, torch.nn.Linear"


def _quantize_dynamic():
    """PyTorch's eager dynamic quantization, or None where this torch no longer ships it
    (deprecated in favour of torchao, whose CPU speed needs torch.compile; torch 2.13
    still has it). Its deprecation warnings are silenced here only."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
        except ImportError:
            return None
    return quantize_dynamic, per_channel_dynamic_qconfig


def quantization() -> str:
    """How the text head's encoder runs here (:data:`INT8`, or "fp32" where torch cannot
    quantize): one of the default model's inputs (``model.input_versions``), so a torch
    without it rebuilds the model for the encoder it has instead of mixing the two."""
    return INT8 if _quantize_dynamic() else "fp32"


def quantize(model):
    """``model`` with its linear layers in int8 (weights per output channel, activations
    quantized on the fly), or ``model`` itself where torch cannot (:func:`quantization`)."""
    import warnings

    import torch

    found = _quantize_dynamic()
    if found is None:
        return model
    quantize_dynamic, qconfig = found
    with warnings.catch_warnings():
        # torch's own deprecation notices for quantized tensors, one per layer
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model, {torch.nn.Linear: qconfig}, dtype=torch.qint8)


class Encoder:
    def __init__(self, model_dir: str | Path, batch_size: int = 64, quantized: bool = False) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self._torch = torch
        # fp32 on load (whatever a folder stores), then rounded to fp16 and back exactly as
        # EyeImagingClassifier does on CPU
        st = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True,
                                 model_kwargs={"dtype": torch.float32})
        st = st.half().float()
        st.eval()
        first = st[0]  # only its tokenizer and model are kept: quantized, the fp32 copy is freed
        self.tokenizer = first.tokenizer
        self.model = quantize(first.auto_model) if quantized else first.auto_model
        self.quantized = quantized and self.model is not first.auto_model
        self.max_length = st.max_seq_length
        self.dimension = int(self.model.config.hidden_size)
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(sentence embeddings [n, d], last-layers embeddings [n, LAYERS * d]).

        Batches are tokenized here, in the calling thread (a fast tokenizer must not be
        shared between threads), and their forward passes run on :data:`WORKERS` threads:
        torch releases the GIL in its operators, and with batches this small two passes
        side by side keep two cores busier than one pass on two threads (about 1.15 times
        the records per second on two cores, bench section 5). Each batch's numbers do not
        depend on the thread it ran on; quantized, a text's numbers depend a little on the
        other texts of its batch (one activation scale per batch), and not at all with
        ``batch_size=1``."""
        n = len(texts)
        sentence = np.zeros((n, self.dimension), dtype=np.float32)
        layers = np.zeros((n, LAYERS * self.dimension), dtype=np.float32)
        order = sorted(range(n), key=lambda i: -len(texts[i]))
        batches = [order[start:start + self.batch_size] for start in range(0, n, self.batch_size)]
        tokenized = [self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                    max_length=self.max_length, return_tensors="pt") for idx in batches]
        if len(batches) > 1 and WORKERS > 1:
            torch = self._torch
            # the cores shared out between the passes: one text per pass is too small a
            # matrix to split, and a pass on one core each ran 1.2 times the records per
            # second of two passes on two threads each (bench section 5); the results do
            # not depend on the number of threads
            with _THREADS:
                threads = torch.get_num_threads()
                torch.set_num_threads(max(1, threads // WORKERS))
                try:
                    with ThreadPoolExecutor(WORKERS, thread_name_prefix="encoder") as pool:
                        results = list(pool.map(self._forward, tokenized))
                finally:
                    torch.set_num_threads(threads)
        else:
            results = [self._forward(batch) for batch in tokenized]
        for idx, (s, l) in zip(batches, results):
            sentence[idx], layers[idx] = s, l
        return sentence, layers

    def _forward(self, batch) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            out = self.model(**batch, output_hidden_states=True)
            mask = batch["attention_mask"].unsqueeze(-1).to(out.last_hidden_state.dtype)
            counts = mask.sum(dim=1).clamp(min=1e-9)
            pooled = []
            for hidden in out.hidden_states[-1:-LAYERS - 1:-1]:  # last layer first
                mean = (hidden * mask).sum(dim=1) / counts
                pooled.append(torch.nn.functional.normalize(mean, p=2, dim=1))
            # each layer has unit norm; the concatenation too
            return pooled[0].numpy(), (torch.cat(pooled, dim=1) / math.sqrt(LAYERS)).numpy()
