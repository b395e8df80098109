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


# ------------------------------------------------------------------ funding references
# Funders of generated records: (name, Crossref Funder Registry id, ROR, acronym). NEI
# sits under NIH: depositors name either, with an NEI award number (institute code EY).
FUNDERS = {
    "nei": ("National Eye Institute", "10.13039/100000053", "https://ror.org/03wkg3b53", "NEI"),
    "nih": ("National Institutes of Health", "10.13039/100000002", "https://ror.org/01cwqze88", "NIH"),
    "nsf": ("National Science Foundation", "10.13039/100000001", "https://ror.org/021nxhr62", "NSF"),
    "nsfc": ("National Natural Science Foundation of China", "10.13039/501100001809", None, "NSFC"),
}
# How the depositors of generated records write an NIH award (``{t}`` application type,
# ``{a}`` activity code, ``{ic}`` institute, ``{s}`` six-digit serial, ``{y}`` support year).
NIH_FORMATS = ["{a}{ic}{s}", "{t}{a}{ic}{s}-{y}", "{a} {ic} {s}", "{ic}{s}", "NIH/NEI {a}{ic}{s}", "{a}-{ic}-{s}"]
# Grants of the generated NEI corpus that datasets cite: the first ones of seed 1, the
# seed the demo and the tests generate RePORTER with (a corpus of fewer grants leaves
# some citations unmatched, as real ones often are).
CITED_GRANTS = 12
CITED_SEED = 1


@dataclass(frozen=True)
class Award:
    funder: str  # a key of FUNDERS
    number: str  # as the depositor wrote it
    title: str | None
    core: str | None  # the NIH core project number it names (None: another funder)


def nih_number(core: str, rng: random.Random) -> str:
    """An NIH core project number the way a depositor might write it."""
    a, ic, s = core[:3], core[3:5], core[5:]
    return rng.choice(NIH_FORMATS).format(t=rng.choice("1235"), a=a, ic=ic, s=s, y=f"{rng.randint(1, 9):02d}")


def funding_plan(source: str, seed: int, i: int) -> list[Award]:
    """The funding references of the ``i``-th generated record of ``source``: none for
    about half; NEI awards of generated RePORTER grants (named NEI or NIH as the funder,
    the number in one of NIH_FORMATS) for about a quarter; NEI awards of grants the
    corpus does not hold; NSF and NSFC awards. Drawn from its own generator, so the
    sources' other generated values do not change."""
    rng = random.Random(f"funding/{source}/{seed}/{i}")
    roll = rng.random()
    awards: list[Award] = []
    if roll < 0.5:
        return awards
    if roll < 0.78:
        from .nei import planned_grants

        for core, title in rng.sample(planned_grants(CITED_GRANTS, CITED_SEED), rng.choice([1, 1, 1, 2])):
            awards.append(Award(rng.choice(["nei", "nei", "nih"]), nih_number(core, rng), title, core))
    elif roll < 0.86:
        core = f"{rng.choice(['R01', 'U10', 'K23'])}EY9{rng.randint(0, 99999):05d}"
        awards.append(Award("nei", nih_number(core, rng), "Imaging biomarkers of retinal disease", core))
    if rng.random() < 0.35 or not awards:
        if rng.random() < 0.5:
            awards.append(Award("nsf", f"{rng.choice(['DEB', 'IOS', 'CBET'])}-{rng.randint(1000000, 2299999)}", None, None))
        else:
            awards.append(Award("nsfc", str(rng.randint(81000000, 82999999)), "Deep learning for fundus images", None))
    return awards
