"""Deterministic texts for generated records: eye imaging datasets and hard negatives.

Every generated record mentions one or more of the shared search terms, so each term
finds records and many records are found by several terms (as in the real APIs).
About a third are negatives that share words with eye imaging (coronary OCT,
eye-tracking, ocular genetics tables, non-eye medical imaging) so the classifier
and the demo show both labels.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from envision_spiders.terms import default_terms

POSITIVE_TEMPLATES = [
    ("{term}: {n} retinal images with expert annotations",
     "This dataset contains {n} {modality} images acquired with a {device} from patients with "
     "{disease} and healthy controls. Images are provided as {fmt} files with segmentation masks "
     "and grading labels. Keywords: {term}, {term2}."),
    ("{modality} scans for {disease} research ({term})",
     "<p>We release <b>{n}</b> {modality} volumes of the macula and optic nerve head recorded on a "
     "{device}. Each scan is labelled for {disease}. See <a href=\"https://example.org/{slug}\">the "
     "project page</a>.</p><p>Related to {term2}.</p>"),
    ("{term} - a public benchmark of {modality} images",
     "A benchmark of {n} de-identified {modality} images for {disease} detection, with train and test "
     "splits, collected at an eye clinic. Formats: {fmt}. Search terms: {term}; {term2}."),
]

# Hard negatives as they come: the search terms appear in passing in the description
# (a search finds them), never as the subject of the title or a keyword.
NEGATIVE_TEMPLATES = [
    ("Intravascular OCT pullbacks of coronary arteries",
     "Optical coherence tomography pullbacks of coronary arteries from {n} patients undergoing PCI, "
     "with stent annotations. Related work on {term} and {term2} used a similar protocol.",
     ["intravascular imaging", "coronary artery disease", "stent"]),
    ("Eye-tracking recordings during sentence reading",
     "Gaze positions and fixations of {n} participants reading sentences, recorded with an eye "
     "tracker at 1000 Hz. Tables in CSV format; no images. Keywords of the lab: {term}, {term2}.",
     ["eye movements", "reading", "psycholinguistics"]),
    ("Genotype and phenotype tables of a {disease} cohort",
     "Variant calls and phenotype tables for {n} individuals with {disease}; no images. VCF and CSV "
     "files. Associated projects: {term}, {term2}.",
     ["genetics", "{disease}", "variants"]),
    ("Brain MRI volumes for tumour segmentation",
     "T1 and FLAIR MRI of {n} patients in NIfTI format with tumour masks. Previous studies used "
     "{term} and {term2}.",
     ["MRI", "brain tumour", "segmentation"]),
]

MODALITIES = ["fundus", "OCT", "OCT angiography", "slit-lamp", "anterior segment OCT", "corneal topography"]
DEVICES = ["Heidelberg Spectralis", "Zeiss Cirrus", "Topcon 3D OCT-2000", "Optos California", "Canon CR-2"]
DISEASES = ["diabetic retinopathy", "glaucoma", "age-related macular degeneration", "keratoconus", "retinal vein occlusion"]
FORMATS = ["PNG", "JPEG", "DICOM", "E2E", "TIFF"]


@dataclass
class GeneratedText:
    title: str
    description: str  # may hold HTML
    keywords: list[str]
    positive: bool
    terms: list[str]  # the search terms the text mentions


def generated_texts(n: int, seed: int = 1, terms: list[str] | None = None) -> list[GeneratedText]:
    rng = random.Random(seed)
    terms = terms or default_terms()
    out = []
    for i in range(n):
        positive = rng.random() < 0.65
        term, term2 = rng.sample(terms, 2)
        if positive:
            title_t, desc_t = rng.choice(POSITIVE_TEMPLATES)
        else:
            title_t, desc_t, keywords_t = rng.choice(NEGATIVE_TEMPLATES)
        values = {
            "term": term,
            "term2": term2,
            "n": rng.randint(40, 90000),
            "modality": rng.choice(MODALITIES),
            "device": rng.choice(DEVICES),
            "disease": rng.choice(DISEASES),
            "fmt": rng.choice(FORMATS),
            "slug": f"ds{seed}-{i}",
        }
        out.append(
            GeneratedText(
                title=title_t.format(**values),
                description=desc_t.format(**values),
                # a negative's keywords are its own field's (the search terms are in passing)
                keywords=([term, values["disease"], values["modality"]] if positive
                          else [k.format(**values) for k in keywords_t]),
                positive=positive,
                terms=[term, term2],
            )
        )
    return out


def file_plan(rng: random.Random, positive: bool) -> list[str]:
    """File names for a generated record (nested paths and odd characters included)."""
    if positive:
        names = [rng.choice(["images.zip", "fundus photos [train].zip", "oct_volumes.tar.gz", "scans.tar"]),
                 "labels.csv"]
        if rng.random() < 0.4:
            names.append(rng.choice(["patient 001.e2e", "scan.fds", "macula.dcm"]))
    else:
        names = [rng.choice(["data.csv", "tables.xlsx", "variants.vcf.gz", "recordings.zip"]), "README.md"]
    return names


def pick_fraction(ids, fraction: float, seed: int) -> list:
    """The records a source's ``modify()`` touches: a deterministic sample of about
    ``fraction`` of ``ids`` (at least one when there is any)."""
    ids = sorted(ids)
    return random.Random(seed).sample(ids, max(1, int(len(ids) * fraction))) if ids else []
