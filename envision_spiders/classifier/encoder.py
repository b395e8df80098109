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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

LAYERS = 4  # the last four hidden layers of the backbone


class Encoder:
    def __init__(self, model_dir: str | Path, batch_size: int = 64) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self._torch = torch
        # fp32 on load (whatever a folder stores), then rounded to fp16 and back exactly as
        # EyeImagingClassifier does on CPU
        st = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True,
                                 model_kwargs={"dtype": torch.float32})
        st = st.half().float()
        st.eval()
        self.st = st
        first = st[0]
        self.tokenizer = first.tokenizer
        self.model = first.auto_model
        self.max_length = st.max_seq_length
        self.dimension = int(self.model.config.hidden_size)
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(sentence embeddings [n, d], last-layers embeddings [n, LAYERS * d])."""
        torch = self._torch
        n = len(texts)
        sentence = np.zeros((n, self.dimension), dtype=np.float32)
        layers = np.zeros((n, LAYERS * self.dimension), dtype=np.float32)
        order = sorted(range(n), key=lambda i: -len(texts[i]))
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                idx = order[start:start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                out = self.model(**batch, output_hidden_states=True)
                mask = batch["attention_mask"].unsqueeze(-1).to(out.last_hidden_state.dtype)
                counts = mask.sum(dim=1).clamp(min=1e-9)
                pooled = []
                for hidden in out.hidden_states[-1:-LAYERS - 1:-1]:  # last layer first
                    mean = (hidden * mask).sum(dim=1) / counts
                    pooled.append(torch.nn.functional.normalize(mean, p=2, dim=1))
                sentence[idx] = pooled[0].numpy()
                # each layer has unit norm; the concatenation too
                layers[idx] = (torch.cat(pooled, dim=1) / math.sqrt(LAYERS)).numpy()
        return sentence, layers
