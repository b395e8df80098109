"""The field's language (envision_spiders.classifier.language): abbreviations with their
context rules, device names, compound words, negation and passing mentions. Pure text
functions: no model needed."""

from __future__ import annotations

import pytest

from envision_spiders.classifier import head
from envision_spiders.classifier.language import EYE_WORDS, analyse, lexicon_sha256, model_text


def expanded(text: str) -> dict[str, str]:
    return dict(analyse(text).expansions)


@pytest.mark.parametrize("text, abbreviation, expansion", [
    ("AMD OCT", "AMD", "age-related macular degeneration"),
    ("GA FAF images", "GA", "geographic atrophy of the retina"),
    ("CNV OCTA scans", "CNV", "choroidal neovascularisation"),
    ("UWF-FA in PDR", "FA", "fluorescein angiography"),
    ("UWF-FA in PDR", "PDR", "proliferative diabetic retinopathy"),
    ("MH and ERM on fundus photographs", "MH", "macular hole"),
    ("nAMD cohort", "nAMD", "neovascular age-related macular degeneration"),
])
def test_abbreviations_expand_in_ophthalmic_context(text, abbreviation, expansion):
    assert expanded(text)[abbreviation] == expansion
    assert expansion in model_text(text)


@pytest.mark.parametrize("text", [
    "DTI FA maps of white matter", "CNV calls from exome sequencing", "GA estimation from fetal biometry",
    "DR detector noise", "MH survey of students", "RP chromatography", "AMD processor benchmark",
    "CFP-tagged proteins in yeast", "Dr. Smith's notes",
])
def test_ambiguous_abbreviations_need_context(text):
    a = analyse(text)
    assert not a.context and not a.expansions and a.model_text == text


def test_case_matters_for_abbreviations():
    assert not analyse("Collected in Oct 2020 by Dr Ga").expansions
    assert not analyse("OCT4 staining").expansions


@pytest.mark.parametrize("text, device", [
    ("Heidelberg Spectralis raw exports", "Heidelberg"),
    ("Topcon Maestro scans", "Topcon"),
    ("Zeiss Cirrus HD-OCT cubes", "Zeiss Cirrus"),
    ("Optos optomap images", "Optos"),
    ("Canon CR-2 photographs", "Canon"),
])
def test_device_names_say_what_they_are(text, device):
    a = analyse(text)
    assert any(name.startswith(device) for name, _ in a.devices)
    assert head.uses_eye_vocabulary(a.model_text)  # the expansion names the eye


def test_vendor_names_alone_are_not_devices():
    for text in ("Topcon total station survey of a quarry", "Cirrus cloud cover", "Canon EOS photographs of birds",
                 "Zeiss microscope images of yeast"):
        assert not analyse(text).devices, text


@pytest.mark.parametrize("text, dataset", [
    ("IDRiD localisation part", "IDRiD"),
    ("messidor-2 with adjudicated grades", "Messidor"),
    ("ODIR-5K", "ODIR"),
    ("OCTA-500 projection maps", "OCTA-500"),
    ("DRIVE: 40 images with vessel masks", "DRIVE"),
    ("DR HAGIS", "DR HAGIS"),
    ("Chiu_BOE_2015 DME segmentation", "Duke DME (Chiu et al.)"),
    ("Harvard-GDP1000", "Harvard-GDP / FairVision"),
    ("HEI-MED exudate set", "HEI-MED"),
    ("Chákṣu glaucoma database", "Chaksu"),
])
def test_well_known_eye_datasets_say_what_they_are(text, dataset):
    a = analyse(text)
    assert [name for name, _ in a.datasets] == [dataset]
    assert head.uses_eye_vocabulary(a.model_text) and a.context  # read as eye imaging, context for abbreviations
    assert "GA = geographic atrophy" in " ".join(f"{x} = {e}" for x, e in analyse(text + " GA").expansions)


def test_devices_and_datasets_named_in_passing_or_negated_are_not_read():
    for text in ("Coronary angiography frames; the labelling protocol followed the DRIVE benchmark",
                 "Skin lesion masks from a network adapted from IDRiD", "No Spectralis exports are included"):
        a = analyse(text)
        assert not a.datasets and not a.devices and a.negated, text


def test_dataset_names_that_are_also_words_count_only_as_their_authors_write_them():
    for text in ("Test drive logs of electric cars", "Google DRIVE export of survey answers", "Stare-down contests",
                 "Refuge camp census", "Origami crease patterns", "Sensor logs of 15 Oct 2017", "Mobileye EyeQ chip logs", "Les AV du Québec"):
        assert not analyse(text).datasets, text


@pytest.mark.parametrize("word", ["intraretinal", "subretinal", "epiretinal", "retinography", "retinographies",
                                  "perifoveal", "choriocapillaris", "chorioretinopathy", "retinoblastoma"])
def test_compound_words_name_the_eye(word):
    assert EYE_WORDS.search(f"images of {word} findings")


def test_non_eye_site_compounds():
    assert head.names_non_eye_site("Intracoronary OCT pullbacks")
    assert head.names_non_eye_site("Echocardiography videos")
    assert head.names_non_eye_site("Diabetic foot ulcer photographs")
    assert not head.names_non_eye_site("Handheld fundus camera images")


@pytest.mark.parametrize("text, gone, kept", [
    ("Intracoronary OCT pullbacks; optical coherence tomography of the eye is not included",
     "eye", "Intracoronary OCT pullbacks"),
    ("This is not an ophthalmic dataset: no retinal or other eye images are included.", "retinal", "dataset"),
    ("Carotid ultrasound. Participants also had fundus photography; those images are not part of this deposit.",
     "fundus", "Carotid ultrasound"),
    ("Intravascular OCT of coronary arteries. Related work on retina scans used a similar protocol.",
     "retina", "coronary arteries"),
    ("Brain MRA. Retinal imaging was planned but not performed.", "Retinal", "Brain MRA"),
    ("Skin lesions; the method was adapted from a retinal vessel segmentation method", "retinal", "Skin lesions"),
    ("Images of non-ocular tissue", "ocular", "tissue"),
])
def test_negated_and_passing_eye_words_are_not_read(text, gone, kept):
    a = analyse(text)
    body = a.model_text.split(" | ")[0]
    assert gone not in body and kept in body and a.negated
    assert not head.uses_eye_vocabulary(body)


def test_negation_keeps_what_the_record_is_about():
    a = analyse("Fundus photographs of eyes with no diabetic retinopathy")
    assert a.model_text.startswith("Fundus photographs of eyes") and head.uses_eye_vocabulary(a.model_text)
    b = analyse("OCT scans, not fundus photographs")
    assert "OCT scans" in b.model_text and "fundus" not in b.model_text.split(" | ")[0]


@pytest.mark.parametrize("text, word", [
    ("Fundus varices in retroflexion: stills of the stomach before injection", "fundus"),
    ("Fundic gland polyps: endoscopy images of the gastric fundus", "fundus"),
    ("Uterine fundus height on third-trimester ultrasound", "fundus"),
    ("Confocal images of the macula densa in mouse kidney", "macula"),
    ("Hair cells of the utricular macula, zebrafish inner ear", "macula"),
])
def test_eye_words_that_name_another_organ_here_are_not_read(text, word):
    a = analyse(text)
    body = a.model_text.split(" | ")[0]
    assert word not in body.lower() and a.other_organ == [word]
    assert not head.uses_eye_vocabulary(body)


@pytest.mark.parametrize("text", [
    "Fundus photographs of patients with chronic kidney disease",
    "Macular OCT in renal failure and the kidney",
    "Fundus images and cardiovascular risk",
])
def test_the_same_words_beside_other_organs_that_have_no_fundus_or_macula_still_name_the_eye(text):
    a = analyse(text)
    assert a.other_organ == [] and head.uses_eye_vocabulary(a.model_text)


@pytest.mark.parametrize("text, written, english", [
    ("Imágenes de fondo de ojo de pacientes diabéticos", "fondo de ojo", "fundus of the eye"),
    ("Retinografías de sospechosos de glaucoma", "Retinografías", "retinography, retinal fundus photographs"),
    ("Fundo de olho em crianças prematuras", "Fundo de olho", "fundus of the eye"),
    ("Fond d'œil et rétinopathie diabétique", "rétinopathie", "retinopathy"),
    ("Netzhaut-OCT vor und nach Makulaforamen-Operation", "Netzhaut", "retina"),
    ("Fundusfotografien von Glaukompatienten", "Fundusfotografien", "fundus photographs of the eye"),
    ("Tomografía de coherencia óptica de la córnea", "córnea", "cornea, corneal"),
    ("Immagini della lampada a fessura", "lampada a fessura", "slit lamp"),
])
def test_eye_words_of_other_languages_are_read_in_english(text, written, english):
    a = analyse(text)
    assert expanded(text).get(written) == english
    assert a.context and head.uses_eye_vocabulary(a.model_text)


@pytest.mark.parametrize("text", ["Imagens de satélite do Brasil", "Fotografías de lesiones cutáneas"])
def test_imaging_words_of_other_languages_give_no_ophthalmic_context(text):
    a = analyse(text)
    assert set(expanded(text).values()) <= {"images", "photographs"} and expanded(text)
    assert not a.context and not head.uses_eye_vocabulary(a.model_text)


@pytest.mark.parametrize("text", ["Corneas and retinopathies", "The augend of the sum", "augmented reality headsets",
                                  "Cornea macula retinography", "Ogen en oren"])
def test_english_words_are_not_read_as_another_language(text):
    assert expanded(text) == {}


def test_no_training_text_is_read_as_another_language():
    """The table is for records in other languages: a pattern that also matched an English
    training text would change what the head learns from it (a clinic called
    'Oftalmocenter' did, and moved other records' probabilities by up to 0.07)."""
    from envision_spiders.classifier import data, language
    from envision_spiders.classifier.text import record_text

    assert language._translated("Imágenes de fondo de ojo")
    texts = list(data.training_examples().texts) + [record_text(r) for r in data.file_examples().records]
    assert [t[:60] for t in texts if language._translated(t)] == []


def test_odd_input_never_raises():
    for text in ("", " ", "no", "not", "(((", "is not included", "\u202e" * 50, "a" * 10_000):
        analyse(text)


def test_the_lexicon_is_a_model_input(monkeypatch):
    from envision_spiders.classifier import language

    before = lexicon_sha256()
    monkeypatch.setitem(language.CONTEXTUAL, "XYZ", "something")
    assert lexicon_sha256() != before
    changed = lexicon_sha256()
    from envision_spiders import modality

    monkeypatch.setitem(modality.AMBIGUOUS_EYE_WORDS, "disc", modality.AMBIGUOUS_EYE_WORDS["fundus"])
    assert lexicon_sha256() != changed
    assert head.recipe_sha256() != ""
