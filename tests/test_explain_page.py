"""The explanation page in a real browser: a model trained with a provenance store explains a text, the page is
opened in headless Chromium (Debian's `chromium` and `chromium-driver`, driven by Selenium), a token is clicked
and its evidence panel is checked. The page and a screenshot are kept in build/test-artifacts/."""

import json
import re
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

import memlm
from memlm.explain_view import write_page

from conftest import ROOT, TRAIN_TEXT

ARTIFACTS = ROOT / "build" / "test-artifacts"
#: A second, tiny training source whose text is markup: its passages carry `</script>` and `<!--` into the page.
MARKUP = "Miss Bates wrote </script><!-- on the card & sighed.\n"
#: The text explained: Emma's first sentence, a line break and the markup (passages from both sources are cited).
TEXT = "Emma Woodhouse, handsome, clever, and rich, with a comfortable home.\n" + MARKUP.strip()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> memlm.Model:
    markup = tmp_path_factory.mktemp("corpus") / "markup.txt"
    markup.write_text(MARKUP)
    return memlm.train([TRAIN_TEXT, markup], width=4, provenance=True)


@pytest.fixture(scope="module")
def explanations(model):
    return model.explain(TEXT, evidence=3)


@pytest.fixture(scope="module")
def page(model, explanations) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "explain_page.html"
    write_page(explanations, path, model.token_string, "memlm explain: <Emma> & co")
    print(f"explanation page and screenshot in {ARTIFACTS}")
    return path


def text_of(element) -> str:
    """The element's text exactly (WebDriver's `.text` folds white space)."""
    return element.get_property("textContent")


def test_page_needs_no_network(page):
    html = page.read_text()
    assert not re.search(r"""\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.IGNORECASE)


def test_clicked_token_shows_its_evidence(page, model, explanations, browser):
    position, explanation = next(
        (i, e)
        for i, e in enumerate(explanations)
        if e.evidence and e.context  # a context of tokens, not padding
    )
    browser.get(page.as_uri())
    text = browser.find_element(By.ID, "text")
    assert text_of(text) == "".join(e.token for e in explanations)
    assert text.value_of_css_property("white-space") == "pre-wrap"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#text .t")) == len(explanations)

    browser.find_element(By.CSS_SELECTOR, f'#text .t[data-i="{position}"]').click()
    browser.save_screenshot(str(ARTIFACTS / "explain_page.png"))

    passages = browser.find_elements(By.CSS_SELECTOR, "#explanation #evidence .passage")
    assert len(passages) == len(explanation.evidence)
    for shown, passage in zip(passages, explanation.evidence, strict=True):
        assert text_of(shown.find_element(By.CLASS_NAME, "source")) == f"{passage.source}:{passage.offset}"
        assert text_of(shown.find_element(By.TAG_NAME, "pre")) == passage.text
        assert text_of(shown.find_element(By.CSS_SELECTOR, "mark.token")) == explanation.prediction_token
        assert text_of(shown.find_element(By.CSS_SELECTOR, "mark.context"))
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []


def test_data_survives_markup_in_text(page, explanations, browser):
    """Passages holding `</script>` and `<!--` (of the markup source) do not end the page's data early."""
    assert any("</script>" in p.text for e in explanations for p in e.evidence or ())
    browser.get(page.as_uri())
    data = browser.execute_script("return document.getElementById('explanations').textContent")
    assert [t["token"] for t in json.loads(data)["tokens"]] == [e.token for e in explanations]
    assert len(browser.find_elements(By.TAG_NAME, "script")) == 2
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []
