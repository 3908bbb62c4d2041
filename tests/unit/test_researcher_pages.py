"""The researcher's pages: the workshop's title and the organizer's instructions from the
configuration (a small plain-text format, always escaped), and a next step after every refusal."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lablink.config import RESEARCHER_INSTRUCTIONS_MAX_BYTES, RESEARCHER_TITLE_MAX_LENGTH, LablinkConfig
from lablink.pages.researcher import NEXT_STEPS, index_page, instructions_html

STAGE = {"path": "/", "requestContext": {"path": "/prod/"}}


def test_a_script_in_the_instructions_is_shown_as_text():
    page = index_page(STAGE, 3, title="Workshop", instructions='Bring a mouse.\n\n<script>alert("x")</script>')
    assert "<script>alert" not in page
    assert "<p>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</p>" in page
    assert "<p>Bring a mouse.</p>" in page


def test_instructions_have_paragraphs_lists_and_links_only():
    html = instructions_html(
        "Welcome to SLEAP 101.\nWe start at 9.\n\n- Bring a laptop\n- Read https://sleap.ai/tutorials.html?a=1&b=2.\n\n"
        'javascript:alert(1) and <a href="javascript:alert(1)">x</a>'
    )
    assert "<p>Welcome to SLEAP 101. We start at 9.</p>" in html
    assert "<li>Bring a laptop</li>" in html
    # The address is a link, the full stop after it is not part of it; & is escaped in both places.
    assert (
        '<li>Read <a href="https://sleap.ai/tutorials.html?a=1&amp;b=2" target="_blank" rel="noopener">'
        "https://sleap.ai/tutorials.html?a=1&amp;b=2</a>.</li>"
    ) in html
    assert 'href="javascript' not in html and "&lt;a href=&quot;javascript:alert(1)&quot;&gt;" in html


def test_no_instructions_no_section():
    assert instructions_html("  \n ") == ""
    assert 'id="instructions"' not in index_page(STAGE, 1, title="LabLink")


def test_the_title_names_the_page_and_its_tab():
    page = index_page(STAGE, 1, title="SLEAP workshop, March 2")
    assert "<title>SLEAP workshop, March 2</title>" in page and "<h1>SLEAP workshop, March 2</h1>" in page


@pytest.mark.parametrize("status", [400, 403, 409, 422, 429, 503])
def test_every_refusal_says_what_to_do_next(status):
    page = index_page(STAGE, 0, title="LabLink", error="Refused.", status=status)
    assert '<p class="error">Refused.</p>' in page
    assert f'<p class="next-step">{NEXT_STEPS[status]}</p>' in page


def test_instructions_must_fit_the_functions_environment():
    """Lambda allows 4 KB for all of a function's environment variables, and the configuration
    is one of them: the longest instructions and title leave room for the others (~1 KB)."""
    longest = "é" * ((RESEARCHER_INSTRUCTIONS_MAX_BYTES - 2) // 2)  # 2 bytes each, plus the quotes
    config = LablinkConfig.model_validate(
        {"researcher": {"title": "T" * RESEARCHER_TITLE_MAX_LENGTH, "instructions": longest}}
    )
    assert len(config.model_dump_json().encode()) <= 3 * 1024
    with pytest.raises(ValidationError, match="bytes as JSON"):
        LablinkConfig.model_validate({"researcher": {"instructions": longest + "é"}})
    with pytest.raises(ValidationError, match="bytes as JSON"):  # escapes count too
        LablinkConfig.model_validate({"researcher": {"instructions": "x\n" * 400}})
    with pytest.raises(ValidationError):
        LablinkConfig.model_validate({"researcher": {"title": ""}})
