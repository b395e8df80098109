"""The field's language: what ophthalmologists write, turned into text the model can read.

The model learns from about a thousand labelled texts, nearly all written out in full
("optical coherence tomography of age-related macular degeneration"). Catalogue records
are often terser: ``AMD OCT``, ``GA FAF images``, ``Heidelberg Spectralis raw exports``,
``SD-OCT B-scans with intraretinal fluid``. A TF-IDF or embedding weight can only be
learnt for words the training data uses, so instead of hand-weighting the short forms,
:func:`analyse` rewrites a text into the form the model knows, and the model's learnt
weights do the rest:

* **Abbreviations** are expanded (``AMD`` -> ``age-related macular degeneration``). Those
  with common meanings outside ophthalmology (DR digital radiography, GA gestational age
  or genetic algorithm, MH mental health, RP reversed phase, FA fractional anisotropy,
  CNV copy number variant, CFP cyan fluorescent protein, ...) are expanded only with
  **ophthalmic context**: a word of :data:`EYE_WORDS`, an unambiguous abbreviation or a
  device or well-known eye dataset name elsewhere in the text. ``DTI FA maps`` stays as written; ``UWF-FA in PDR``
  becomes fluorescein angiography in proliferative diabetic retinopathy.
* **Device and vendor names** (Heidelberg Spectralis, Topcon Triton, Zeiss Cirrus, Optos,
  Canon CR-2, Nidek, Optovue, ...) gain what they are (``ophthalmic OCT and retinal
  imaging device``). Vendor names that also make other things (Topcon surveying
  instruments, Zeiss microscopes, Canon cameras, cirrus clouds) count only with a model
  name or ophthalmic context.
* **Well-known eye datasets** (IDRiD, Messidor, EyePACS, ODIR, REFUGE, OCTA-500, ...)
  are read as what they are (``retinal fundus image database for diabetic retinopathy``):
  catalogue titles of re-uploads are often a dataset's name and little more.
* **Other languages**: catalogues hold records titled in Spanish, Portuguese, French,
  German, Italian and Dutch ("Imágenes de fondo de ojo", "Netzhaut-OCT vor und nach
  Operation", "Fundusfotografien von Glaukompatienten"). Their words for the eye and its
  imaging (:data:`TRANSLATIONS`) are read in English like the abbreviations, and the eye
  words among them count as ophthalmic context.
* **Compound words** the word lists missed are matched by their parts: ``intraretinal``,
  ``subretinal``, ``epiretinal``, ``retinography``, ``perifoveal``, ``choriocapillaris``,
  ``intracoronary``, ``echocardiography``.
* **Negation and passing mentions**: eye words governed by a negation ("optical coherence
  tomography of the eye is not included", "no retinal images", "not an ophthalmic
  dataset", "unlike retinal OCT") or named in passing ("adapted from a retinal vessel
  method", "related work on retina scans") are taken out of the text the model reads; the
  eye words that remain are what the record is about. A NegEx-style scope: a cue before a
  term governs the next few words up to a clause boundary; a cue after it ("... is not
  included") governs its clause.
* **Words of two organs**: "fundus" and "macula" name the stomach's fundus and the
  kidney's macula densa too; beside a word for that other organ (stomach, gastric,
  varices; densa, utricle...) they are taken out as well, by the rule file names
  follow (:func:`envision_spiders.modality.names_other_organ`).

The rewritten text is :attr:`Analysis.model_text` (the text with negated spans removed,
then the expansions appended); training and inference both go through it, and the
lexicon's sha256 is an input of the model's fingerprint (:func:`lexicon_sha256`). The
:class:`Analysis` also says what it found, in plain words, for a label's evidence.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from envision_spiders.modality import AMBIGUOUS_EYE_WORDS, names_other_organ

# Words for the eye, its parts, its diseases and ophthalmic methods, compounds included.
# Left out on purpose: "lens" and "iris" (cameras, flowers, biometrics), "vision"/"visual"
# (psychophysics, computer vision), "pupil" (eye tracking), bare "kerat-" (keratinocytes),
# "papillary" (thyroid), "orbit" (chemistry, astronomy), "oct" itself (an imaging method
# of many organs: it is an abbreviation below).
EYE_WORDS = re.compile(
    r"\b(eyes?|ocular|intraocular|periocular|(?:intra|sub|epi|pre|peri|para|extra|chorio|vitreo|neuro)?retina[ls]?"
    r"|retinopath\w*|retinograph\w*|retinoblastoma\w*|retinitis|retinoschisis|chorioretin\w*|fund(?:us|i)"
    r"|funduscop\w*|fundoscop\w*|cornea[ls]?|macula[r]?|maculopath\w*|ophthalm\w*|optic (?:disc|disk|nerve|cup)s?"
    r"|choroid\w*|chorio\w*|glaucoma\w*|vitreo\w*|vitreous|uvea[l]?|uveitis|sclera[l]?|scleritis|conjunctiv\w*"
    r"|eyelids?|meibo\w*|kerato(?:conus|pathy|plasty|metry|meter)|keratitis|cataracts?|myopi\w*"
    r"|(?:para|peri|sub)?fovea[l]?|drusen|papill?oedema|papilledema|peripapillary|anterior segment|slit[- ]lamp"
    r"|gonioscop\w*|pachymetr\w*|pterygi\w*|strabism\w*|amblyop\w*|photoreceptors?|limbal|lacrimal)\b",
    re.IGNORECASE,
)

# abbreviation -> expansion. UNAMBIGUOUS ones stand for ophthalmic terms in any record;
# CONTEXTUAL ones only in a text with ophthalmic context (see the module doc). Matched
# case-sensitively as whole words (``Dr`` or ``oct`` are not abbreviations). OCT and its
# variants give context but are not expanded: they name a method used on many organs,
# the training texts use the abbreviation as often as the words, and spelling it out
# only made OCT of other organs look more like the retinal OCT the model knows
# (cross-validation, docs/classifier.md). An expansion already in the text is not added.
UNAMBIGUOUS = {
    "nAMD": "neovascular age-related macular degeneration",
    "wAMD": "wet age-related macular degeneration",
    "ARMD": "age-related macular degeneration",
    "NPDR": "non-proliferative diabetic retinopathy",
    "BRVO": "branch retinal vein occlusion",
    "CRVO": "central retinal vein occlusion",
    "HRVO": "hemiretinal vein occlusion",
    "RVO": "retinal vein occlusion",
    "BRAO": "branch retinal artery occlusion",
    "CRAO": "central retinal artery occlusion",
    "CSCR": "central serous chorioretinopathy",
    "CNVM": "choroidal neovascular membrane",
    "DRIL": "disorganisation of the retinal inner layers",
    "FTMH": "full-thickness macular hole",
    "VMT": "vitreomacular traction",
    "RNFL": "retinal nerve fibre layer",
    "pRNFL": "peripapillary retinal nerve fibre layer",
    "GCIPL": "ganglion cell and inner plexiform layer of the retina",
    "GCC": "retinal ganglion cell complex",
    "ONH": "optic nerve head",
    "POAG": "primary open-angle glaucoma",
    "PACG": "primary angle-closure glaucoma",
    "XLRS": "X-linked retinoschisis",
    "LHON": "Leber hereditary optic neuropathy",
    "OCT": "",
    "OCTA": "",
    "OCT-A": "",
    "SD-OCT": "",
    "SS-OCT": "",
    "SSOCT": "",
    "SDOCT": "",
    "TD-OCT": "",
    "AS-OCT": "anterior segment optical coherence tomography",
    "EDI-OCT": "",
    "FAF": "fundus autofluorescence",
    "ICGA": "indocyanine green angiography",
    "UWF": "ultra-widefield retinal imaging",
    "AOSLO": "adaptive optics scanning laser ophthalmoscopy",
    "cSLO": "confocal scanning laser ophthalmoscopy",
    "IVCM": "in vivo confocal microscopy of the cornea",
    "BCVA": "best-corrected visual acuity of the eye",
    "ETDRS": "early treatment diabetic retinopathy study",
    "HVF": "Humphrey visual field of the eye",
}
CONTEXTUAL = {
    "AMD": "age-related macular degeneration",
    "DR": "diabetic retinopathy",
    "PDR": "proliferative diabetic retinopathy",
    "DME": "diabetic macular edema",
    "DMO": "diabetic macular oedema",
    "GA": "geographic atrophy of the retina",
    "CNV": "choroidal neovascularisation",
    "MNV": "macular neovascularisation",
    "CSC": "central serous chorioretinopathy",
    "PCV": "polypoidal choroidal vasculopathy",
    "ERM": "epiretinal membrane",
    "MH": "macular hole",
    "RP": "retinitis pigmentosa",
    "ROP": "retinopathy of prematurity",
    "IRD": "inherited retinal disease",
    "NTG": "normal-tension glaucoma",
    "PRP": "panretinal photocoagulation",
    "RPE": "retinal pigment epithelium",
    "IRF": "intraretinal fluid",
    "SRF": "subretinal fluid",
    "PED": "pigment epithelial detachment",
    "GCL": "retinal ganglion cell layer",
    "ILM": "internal limiting membrane of the retina",
    "IOP": "intraocular pressure",
    "VA": "visual acuity",
    "CFP": "colour fundus photography",
    "FA": "fluorescein angiography",
    "FFA": "fundus fluorescein angiography",
    "ICG": "indocyanine green angiography",
    "SLO": "scanning laser ophthalmoscopy",
    "UBM": "ultrasound biomicroscopy of the eye",
    "CCM": "corneal confocal microscopy",
    "OD": "right eye",
    "OS": "left eye",
    "OU": "both eyes",
}
_ABBREVIATION = re.compile(
    r"(?<!\w)(" + "|".join(re.escape(a) for a in sorted({**UNAMBIGUOUS, **CONTEXTUAL}, key=len, reverse=True)) + r")(?!\w)"
)

# Words of other languages catalogues use for the eye and its imaging: (pattern, the
# English the model reads, whether it names the eye). Case-insensitive; an accent is
# required where the word without it is English (córnea, rétinopathie);
# German compounds by their first part ("Netzhautablösung", "Fundusfotografien").
# Words that are English too (retina, glaucoma, cornea) need no entry; words that are
# English words with another meaning are left out ("oog", "foto" alone). The eye words
# give ophthalmic context; the imaging words (images, photographs, angiography) do not.
TRANSLATIONS = (
    # Spanish, Portuguese, Italian, French: the back of the eye
    (r"\bfondo (?:de ojos?|del ojo|oculare|dell'occhio)\b", "fundus of the eye", True),
    (r"\bfundo (?:de olho|do olho|ocular)\b", "fundus of the eye", True),
    (r"\bfond d['’](?:œ|oe)il\b", "fundus of the eye", True),
    (r"\bretinograf[ií]as?\b|\brétinographies?\b", "retinography, retinal fundus photographs", True),
    (r"\bretinopat[ií]as?\b|\bretinopatie\b|\brétinopathies?\b|\bretinopathien?\b", "retinopathy", True),
    (r"\br[eé]tin(?:e|ien|ienne|iens|iennes)\b|\bretinian[oa]s?\b|\bretinic[oaie]\b|\bretiniche\b",
     "retina, retinal", True),
    (r"\boftalmolog\w*|\bophtalmolog\w*", "ophthalmology, ophthalmic", True),
    (r"\btomograf[ií]as? (?:de|por) coher[eê]ncia [oó]ptica\b|\btomograf[ií]a de coherencia [oó]ptica\b"
     r"|\btomographie (?:par|en) coh[eé]rence optique\b|\btomografia a coerenza ottica\b",
     "optical coherence tomography", False),
    (r"\bcórneas?\b|\bcornées?\b|\bcorneales?\b|\bcorneais\b", "cornea, corneal", True),
    (r"\bmáculas?\b|\bmaculares\b", "macula", True),
    (r"\bcataratas?\b|\bcatarattas?\b", "cataract", True),
    (r"\bqueratitis\b|\bqueratocono\b|\bceratite\b|\bceratocone\b|\bk[eé]ratite\b|\bk[eé]ratoc[oô]ne\b",
     "keratitis, keratoconus", True),
    (r"\bl[aá]mpara de hendidura\b|\bl[aâ]mpada de fenda\b|\blampe [aà] fente\b|\blampada a fessura\b",
     "slit lamp", True),
    (r"\bglaucomatos[oa]s?\b|\bglaucomateu(?:x|se)\b", "glaucomatous", True),
    (r"\b(?:ojos?|olhos?|occhi|occhio|yeux|[œo]eil)\b", "eye", True),
    # German and Dutch
    (r"\bnetzhaut\w*|\bnetvlies\w*", "retina", True),
    (r"\baugenhintergrund\w*|\bfundus(?:foto|fotografie|aufnahme|bild|kamera)\w*|\bfundusfoto\w*",
     "fundus photographs of the eye", True),
    (r"\baugen(?:heilkunde|klinik|arzt|ärzte|erkrankung\w*|krankheit\w*|innendruck|bilder|aufnahmen)?\b|\bauge\b"
     r"|\boogheelkund\w*", "eye, ophthalmology", True),
    (r"\bhornhaut\w*|\bhoornvlies\w*", "cornea", True),
    (r"\bmakula\w*", "macula", True),
    (r"\bsehnerv\w*|\boogzenuw\w*", "optic nerve", True),
    (r"\bspaltlampe\w*|\bspleetlamp\w*", "slit lamp", True),
    (r"\bglaukom\w*", "glaucoma", True),
    (r"\bkatarakt\w*|\bgrauer star\b", "cataract", True),
    (r"\bnetzhaut-?oct\b", "retinal optical coherence tomography", True),
    # the imaging words (no eye context by themselves)
    (r"\bim[aá]genes\b|\bimagens\b|\bimmagini\b|\bbilder\b|\baufnahmen\b|\bbeelden\b", "images", False),
    (r"\bfotograf[ií]as\b|\bfotografien\b|\bphotographies\b|\bfotografie\b|\bfoto's\b", "photographs", False),
    (r"\bangiograf[ií]as?\b|\bangiographie\b|\bangiografie\b", "angiography", False),
)
_TRANSLATIONS = tuple((re.compile(p, re.IGNORECASE), english, eye) for p, english, eye in TRANSLATIONS)

# Ophthalmic imaging devices: (pattern, name shown in evidence, what it is). Case-insensitive.
DEVICES = (
    (r"spectralis|heidelberg (?:engineering|retina angiograph|retina tomograph|hra|hrt)|\bhra ?\+ ?oct",
     "Heidelberg Spectralis / HRA / HRT", "ophthalmic OCT and retinal imaging device"),
    (r"topcon (?:triton|maestro\d?|dri|3d ?oct|trc|nw ?\d+|oct)", "Topcon", "ophthalmic OCT and fundus camera"),
    (r"\btriton (?:ss-?oct|dri|oct)|maestro ?2\b", "Topcon Triton / Maestro", "ophthalmic OCT and fundus camera"),
    (r"(?:zeiss )?cirrus(?: hd)?[- ]oct|zeiss cirrus|cirrus (?:5000|6000|4000|500|photo)",
     "Zeiss Cirrus", "ophthalmic OCT device"),
    (r"zeiss clarus|clarus (?:500|700)|visucam|plex ?elite|stratus oct|zeiss ff ?450",
     "Zeiss Clarus / Visucam / PLEX Elite", "ophthalmic fundus camera and OCT"),
    (r"\boptos\b|optomap", "Optos", "ultra-widefield retinal imaging device"),
    (r"canon (?:cr|cx)[- ]?\d|canon cr[- ]?dgi", "Canon CR / CX", "non-mydriatic retinal fundus camera"),
    (r"\bnidek\b", "Nidek", "ophthalmic imaging device"),
    (r"optovue|rtvue|angiovue|\bivue\b", "Optovue", "ophthalmic OCT and OCT angiography device"),
    (r"\bretcam\b", "RetCam", "paediatric retinal imaging camera"),
    (r"pentacam", "Pentacam", "corneal Scheimpflug tomography device"),
    (r"bioptigen", "Bioptigen", "ophthalmic OCT device"),
    (r"3nethra|forus health", "Forus 3nethra", "retinal fundus camera"),
)
_DEVICES = tuple((re.compile(p, re.IGNORECASE), name, what) for p, name, what in DEVICES)

# Well-known public eye imaging datasets, as catalogues name them: (pattern, name shown in
# evidence, what it is). Catalogue titles of re-uploads and challenge data are often the
# dataset's name and little else ("IDRiD", "Messidor-2", "ODIR-5K", "OCTA-500"); the model
# cannot learn weights for names it never saw, so they are read as what they are, like the
# devices. Case-insensitive where the name is distinctive; names that are also English
# words or other acronyms (DRIVE, STARE, REFUGE, FIVES, OLIVES) only in capitals as
# written by their authors; left out altogether where even that is ambiguous (HRF, ROC,
# LAG, DDR, PALM, ADAM, GAMMA, ROSE). Each counts as ophthalmic context.
DATASETS = (
    (r"\bidrid\b", "IDRiD", "Indian diabetic retinopathy image dataset of retinal fundus photographs"),
    (r"\bmessidor\b", "Messidor", "retinal fundus image database for diabetic retinopathy"),
    (r"\beyepacs\b", "EyePACS", "diabetic retinopathy screening retinal fundus photographs"),
    (r"\baptos\b", "APTOS", "tele-ophthalmology retinal fundus photographs of diabetic retinopathy"),
    (r"\bodir\b", "ODIR", "ocular disease recognition dataset of retinal fundus photographs"),
    (r"\brfmid\b", "RFMiD", "retinal fundus multi-disease image dataset"),
    (r"\bdiaretdb ?[01]?\b", "DIARETDB", "diabetic retinopathy retinal fundus image database"),
    (r"\be-?ophtha\b", "e-ophtha", "retinal fundus images of diabetic retinopathy lesions"),
    (r"\bchase[_ -]?db ?1?\b", "CHASE_DB1", "retinal fundus images for retinal vessel segmentation"),
    (r"\bdrions(?:[_ -]?db)?\b", "DRIONS-DB", "retinal fundus images of the optic nerve head"),
    (r"\bdr[_ -]?hagis\b", "DR HAGIS", "retinal fundus images for vessel segmentation"),
    (r"\b(?:inspire[_ -]?avr|vicavr)\b", "INSPIRE-AVR / VICAVR", "retinal fundus images of retinal arteries and veins"),
    (r"\boriga(?:[_ -]?light)?\b", "ORIGA", "retinal fundus image database for glaucoma"),
    (r"\bdrishti[_ -]?gs1?\b", "Drishti-GS", "retinal fundus images for optic disc and cup segmentation"),
    (r"\brim[_ -]?one\b", "RIM-ONE", "retinal fundus images of the optic nerve head for glaucoma"),
    (r"\bg1020\b", "G1020", "retinal fundus image dataset for glaucoma"),
    (r"\bpapila\b", "PAPILA", "retinal fundus images of the optic disc for glaucoma"),
    (r"\bacrima\b", "ACRIMA", "retinal fundus images for glaucoma"),
    (r"\bairogs\b|\bjustraigs\b", "AIROGS / JustRAIGS", "glaucoma screening retinal fundus photographs"),
    (r"\bdeepdrid\b", "DeepDRiD", "diabetic retinopathy retinal fundus and ultra-widefield images"),
    (r"\bm?brset\b", "BRSET", "Brazilian ophthalmological retinal fundus photograph dataset"),
    (r"\bjsiec\b", "JSIEC", "retinal fundus images of retinal conditions"),
    (r"\bichallenge\b", "iChallenge", "ophthalmic image challenge of retinal fundus photographs"),
    (r"\bi-?rop\b", "i-ROP", "retinal images of retinopathy of prematurity"),
    (r"\bareds2?\b", "AREDS", "age-related eye disease study with retinal fundus photographs"),
    (r"\bocta[_ -]?500\b", "OCTA-500", "retinal optical coherence tomography angiography dataset"),
    (r"\boctid\b", "OCTID", "retinal optical coherence tomography image database"),
    (r"\boctdl\b", "OCTDL", "retinal optical coherence tomography dataset"),
    (r"\boct[_ -]?5k\b", "OCT5k", "retinal optical coherence tomography B-scans"),
    (r"\baroi\b", "AROI", "annotated retinal optical coherence tomography images"),
    (r"\bsustech[_ -]?sysu\b", "SUSTech-SYSU", "corneal ulcer slit-lamp images of the eye"),
    (r"\biostar\b", "IOSTAR", "retinal scanning laser ophthalmoscope images for vessel segmentation"),
    (r"\brc[_ -]slo\b", "RC-SLO", "retinal scanning laser ophthalmoscope image patches for vessel segmentation"),
    (r"(?-i:\bLES-AV\b)", "LES-AV", "retinal fundus images for artery and vein segmentation"),
    (r"(?-i:\bAV-WIDE\b)", "AV-WIDE", "ultra-widefield retinal images for artery and vein segmentation"),
    (r"\bhei[_ -]?med\b", "HEI-MED", "retinal fundus images of diabetic macular edema"),
    (r"\bonhsd\b", "ONHSD", "retinal fundus images for optic nerve head segmentation"),
    (r"\bfgadr\b", "FGADR", "retinal fundus images of diabetic retinopathy lesions"),
    (r"\bch[aáā]k[sṣ]u\b", "Chaksu", "retinal fundus images for glaucoma"),
    (r"(?-i:\bMuReD\b)", "MuReD", "multi-label retinal disease fundus image dataset"),
    (r"\bdeepeyenet\b", "DeepEyeNet", "retinal images with clinical keywords"),
    (r"\bharvard[_ -]?(?:gdp|fairvision|fairseg)\w*", "Harvard-GDP / FairVision",
     "glaucoma and retinal disease OCT and fundus imaging dataset"),
    (r"\bai[_ -]?readi\b", "AI-READI", "diabetes retinal imaging dataset of fundus, OCT and OCT angiography"),
    (r"(?-i:\bOCT2017\b)", "Kermany OCT2017", "retinal optical coherence tomography images"),
    (r"\bchiu[_ -]?boe\w*|\bduke[_ -]?dme\b", "Duke DME (Chiu et al.)", "retinal OCT B-scans of diabetic macular edema"),
    (r"\bneh[_ -]ut\b", "NEH-UT", "retinal optical coherence tomography dataset"),
    (r"(?<!google )(?<!one)(?-i:\bDRIVE\b)", "DRIVE", "digital retinal images for vessel extraction: retinal fundus photographs"),
    (r"(?-i:\bSTARE\b)", "STARE", "structured analysis of the retina: retinal fundus images"),
    (r"(?-i:\bREFUGE2?\b)", "REFUGE", "retinal fundus glaucoma challenge images"),
    (r"(?-i:\bFIVES\b)", "FIVES", "fundus image vessel segmentation dataset of the retina"),
    (r"(?-i:\bOLIVES\b)", "OLIVES", "ophthalmic dataset of retinal OCT and fundus images"),
    (r"(?-i:\bRETOUCH\b)", "RETOUCH", "retinal OCT fluid segmentation challenge"),
    (r"(?-i:\bDRAC ?20\d\d\b)", "DRAC", "diabetic retinopathy analysis challenge of retinal OCT angiography"),
)
_DATASETS = tuple((re.compile(p, re.IGNORECASE), name, what) for p, name, what in DATASETS)
_NAMED = _DEVICES + _DATASETS  # names of ophthalmic things: each is a sign of the eye

# Negation and passing-mention cues (see the module doc). PRE cues govern up to
# SCOPE_WORDS words after them; POST cues the clause before them.
PRE_CUES = re.compile(
    r"\b(?:no|not|without|neither|nor|excluding|except|unlike|instead of|rather than|other than|as opposed to"
    r"|not to be confused with|unrelated to|irrespective of|adapted from|borrowed from|reused from"
    r"|inspired by|followed the|as in the|modell?ed on|analogous to|in the style of"
    r"|originally (?:developed|designed|built|made|intended) for|first (?:developed|designed|built) for"
    r"|(?:related|previous|prior|earlier|other) (?:work|studies|study) (?:on|in|with|of)|similar to|exclude[sd]?"
    r"|avoid(?:s|ed|ing)?)\b",
    re.IGNORECASE,
)
POST_CUES = re.compile(
    r"\b(?:(?:is|are|was|were|be|been) (?:not|never) (?:included|part of|provided|shared|available|imaged|performed"
    r"|recorded|collected|released|covered|assessed|captured|acquired|deposited|analysed|analyzed)"
    r"|not (?:included|part of this|imaged|performed|recorded|collected)|(?:is|are|was|were) (?:excluded|masked"
    r"|blacked out|removed|omitted)|cannot be (?:assessed|shared)|(?:was|were) planned but not)\b",
    re.IGNORECASE,
)
_NON_PREFIX = re.compile(r"\bnon-?", re.IGNORECASE)
_CLAUSE_END = re.compile(r"[.;:!?()\[\]]|\b(?:but|however|although|whereas|while)\b|, (?:and|which|who)\b", re.IGNORECASE)
_ANAPHOR = re.compile(r"\s*(?:(?:those|these|such|the|their|its) (?:images|photographs|photos|scans|data|recordings)"
                      r"|they|them|it)\b", re.IGNORECASE)
SCOPE_WORDS = 6
_WORD = re.compile(r"\S+")


@dataclass
class Analysis:
    """What :func:`analyse` found in a text."""

    model_text: str  # what the model reads
    eye_terms: list[str] = field(default_factory=list)  # eye words the model still reads
    negated: list[str] = field(default_factory=list)  # negated or passing spans taken out
    other_organ: list[str] = field(default_factory=list)  # eye words naming another organ here, taken out
    expansions: list[tuple[str, str]] = field(default_factory=list)  # (as written, expansion)
    devices: list[tuple[str, str]] = field(default_factory=list)  # (name, what it is)
    datasets: list[tuple[str, str]] = field(default_factory=list)  # well-known eye datasets named: (name, what)
    context: bool = False  # the text has ophthalmic context for contextual abbreviations

    @property
    def named(self) -> list[tuple[str, str]]:
        """The devices and datasets named: (name, what it is)."""
        return self.devices + self.datasets


# Words any dataset's title or description uses, whatever it holds: with scikit-learn's
# English stop words, what is left of a text after them names its subject ("Breast
# ultrasound images" names breast and ultrasound; "Supplementary data S1", "Images for the
# manuscript", "Data from: a deep learning approach" name nothing). The file evidence's
# floor of eye imaging falls with how many subject words a text has (head.specificity):
# the floor is there for texts that do not say what they hold.
GENERIC_WORDS = frozenset("""
data dataset datasets database set sets subset supplementary supplemental supporting supplement material materials
file files folder folders archive archives archived zip tar upload uploaded uploads export exported download
raw processed image images imaging scan scans scanned photo photos photograph photographs picture pictures
frame frames video videos figure figures fig figs panel panels table tables source version revised final draft
part parts batch batches pilot thesis chapter dissertation manuscript manuscripts paper papers article publication
journal submission revision review reviewer project projects study studies cohort collection collections
annotated annotation annotations label labels labelled labeled analysis analyses analysed analyzed clinical
replication reproduction reproducible package results result method methods experiment experiments experimental
repository sample samples measurement measurements record records test train training validation split
deep learning machine model models approach detection classification segmentation dataset_final
early disease diseases progression patient patients participant participants subject subjects
site sites center centre centres centers hospital clinic anonymised anonymized deidentified identified
related changes change age animal human case cases report reports follow longitudinal visit visits baseline
group groups control controls year years day days month months time point points new old additional various
contains containing include includes including provided provides used using use available accompanying associated
described describe presented obtained acquired collected taken underlying
""".split())
_SUBJECT_WORD = re.compile(r"[a-z]{3,}")


def subject_words(text: str) -> set[str]:
    """The distinct words of a text that say what it holds: not stop words, not
    :data:`GENERIC_WORDS`, not numbers or identifiers."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return {w for w in _SUBJECT_WORD.findall(text.lower()) if w not in ENGLISH_STOP_WORDS and w not in GENERIC_WORDS}


def lexicon_sha256() -> str:
    """sha256 of every list and pattern here: an input of the default model."""
    spec = {"eye": EYE_WORDS.pattern, "unambiguous": UNAMBIGUOUS, "contextual": CONTEXTUAL, "devices": DEVICES,
            "datasets": DATASETS, "translations": TRANSLATIONS,
            "pre": PRE_CUES.pattern, "post": POST_CUES.pattern, "clause": _CLAUSE_END.pattern, "scope": SCOPE_WORDS,
            "anaphor": _ANAPHOR.pattern, "other_organ": {w: r.pattern for w, r in AMBIGUOUS_EYE_WORDS.items()},
            "generic": sorted(GENERIC_WORDS), "subject_word": _SUBJECT_WORD.pattern}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _negated_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of eye words governed by a negation or a passing-mention cue."""
    pre, post = list(PRE_CUES.finditer(text)), list(POST_CUES.finditer(text))
    prefixed = list(_NON_PREFIX.finditer(text))
    if not (pre or post or prefixed):  # most texts: no cue, nothing to look up
        return []
    # eye words, abbreviations, and the names of devices and datasets ("adapted from IDRiD")
    terms = [(m.start(), m.end()) for pattern in (EYE_WORDS, _ABBREVIATION) for m in pattern.finditer(text)] + \
            [(m.start(), m.end()) for pattern, _, _ in _NAMED for m in pattern.finditer(text)]
    if not terms:
        return []
    clauses = list(_CLAUSE_END.finditer(text))
    ends = [m.start() for m in clauses] + [len(text)]
    starts = [0] + [m.end() for m in clauses]
    spans = []
    for cue in pre:
        stop = min(e for e in ends if e >= cue.end())
        words = list(_WORD.finditer(text, cue.end(), stop))[:SCOPE_WORDS]
        limit = words[-1].end() if words else cue.end()
        hit = [t for t in terms if cue.end() <= t[0] and t[1] <= limit]
        if hit:
            spans.append((cue.start(), max(t[1] for t in hit)))
    for cue in post:
        prior = [s for s in starts if s <= cue.start()]
        begin = prior[-1]
        # "retinal imaging was planned but not performed": the clause runs back past "but";
        # "...fundus photography; those images are not included": back to the clause they name
        if len(prior) > 1 and (re.search(r"\bbut\s*$", text[max(0, begin - 6):begin], re.IGNORECASE)
                               or _ANAPHOR.match(text, begin)):
            begin = prior[-2]
        hit = [t for t in terms if begin <= t[0] and t[1] <= cue.start()]
        if hit:
            spans.append((begin, cue.end()))
    # "non-ocular", "non-ophthalmic": the prefix negates its own word
    for m in prefixed:
        word = EYE_WORDS.match(text, m.end())
        if word:
            spans.append((m.start(), word.end()))
    return _merge(spans)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out


def _translated(text: str) -> list[tuple[str, str, bool]]:
    """(as written, English, names the eye) of each word of :data:`TRANSLATIONS` in the
    text, once per English reading."""
    found: list[tuple[str, str, bool]] = []
    for pattern, english, eye in _TRANSLATIONS:
        m = pattern.search(text)
        if m and all(english != e for _, e, _ in found):
            found.append((m.group(0), english, eye))
    return found


def _named(table, text: str) -> list[tuple[str, str]]:
    """(name, what it is) of each entry of a DEVICES-like table the text names, once."""
    found: list[tuple[str, str]] = []
    for pattern, name, what in table:
        if (name, what) not in found and pattern.search(text):
            found.append((name, what))
    return found


_TWO_ORGAN = re.compile(r"\b(" + "|".join(AMBIGUOUS_EYE_WORDS) + r")\b", re.IGNORECASE)


def _other_organ_spans(text: str) -> list[tuple[int, int]]:
    """Spans of eye words that name another organ in this text: "fundus" beside the
    stomach, "macula" in "macula densa" (:func:`envision_spiders.modality.names_other_organ`,
    the rule file names follow)."""
    return [(m.start(), m.end()) for m in _TWO_ORGAN.finditer(text) if names_other_organ(m.group(1).lower(), text)]


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def analyse(text: str) -> Analysis:
    """The model text of ``text`` and what was found (see the module doc)."""
    text = text or ""
    negated_spans, organ_spans = _negated_spans(text), _other_organ_spans(text)
    negated = [" ".join(text[a:b].split()) for a, b in negated_spans]
    other_organ = list(dict.fromkeys(text[a:b].lower() for a, b in organ_spans))
    spans = _merged(negated_spans + organ_spans)
    kept = text
    for a, b in reversed(spans):
        kept = kept[:a] + " " + kept[b:]
    kept = " ".join(kept.split())
    devices, datasets = _named(_DEVICES, kept), _named(_DATASETS, kept)
    abbreviations = [m.group(1) for m in _ABBREVIATION.finditer(kept)]
    eye_terms = [m.group(0) for m in EYE_WORDS.finditer(kept)]
    translated = _translated(kept)
    context = bool(eye_terms or devices or datasets or any(a in UNAMBIGUOUS for a in abbreviations)
                   or any(eye for _, _, eye in translated))
    expansions: list[tuple[str, str]] = [(written, english) for written, english, _ in translated]
    seen = set()
    lower = kept.lower()
    for a in abbreviations:
        expansion = UNAMBIGUOUS.get(a) if a in UNAMBIGUOUS else (CONTEXTUAL.get(a) if context else None)
        if expansion and a not in seen and expansion.lower() not in lower:
            seen.add(a)
            expansions.append((a, expansion))
    extra = [e for _, e in expansions] + [f"{name} {what}" for name, what in devices + datasets]
    model_text = kept + (" | " + "; ".join(extra) if extra else "")
    eye_terms += [m.group(0) for m in EYE_WORDS.finditer("; ".join(extra))]
    return Analysis(model_text=model_text, eye_terms=eye_terms, negated=negated, other_organ=other_organ,
                    expansions=expansions,
                    devices=devices, datasets=datasets, context=context)


def model_text(text: str) -> str:
    return analyse(text).model_text


def first_eye_signal(model_text: str, limit: int | None = None) -> int | None:
    """Where the first sign of the eye is in a model text's own words (before the
    appended expansions, within ``limit`` characters): an eye word, a device name, an
    unambiguous abbreviation or a contextual one that was expanded. None if there is none."""
    body, _, appended = model_text.partition(" | ")
    if limit is not None:
        body = body[:limit]
    found = [m.start() for m in EYE_WORDS.finditer(body)]
    found += [m.start() for pattern, _, _ in _NAMED for m in pattern.finditer(body)]
    found += [m.start() for m in _ABBREVIATION.finditer(body)
              if m.group(1) in UNAMBIGUOUS or (CONTEXTUAL.get(m.group(1)) or "\0") in appended]
    return min(found) if found else None
