"""In headless Chromium: a user's CSV is uploaded in the New run form, chosen, and sizes the model.

    .venv/bin/python -m pytest --headless tests/browser/test_upload_data_file.py
"""
from __future__ import annotations

import csv
import hashlib

import pytest

from backend.tasks.sentiment.core import generate_sentiment
from dashboard import ids
from tests.browser.test_training_flow import css_id, js_enabled, js_text, until

pytestmark = pytest.mark.browser
# dashboard/views/new_run/page.py's ids (importing a page module here would register its callbacks twice)
NEW_UPLOAD, NEW_UPLOAD_STATUS = "new-upload", "new-upload-status"


@pytest.mark.timeout(120)
def test_up001_upload_a_csv_then_start_is_possible(dash_duo, tmp_path):
    from dashboard.app import create_app

    reviews = tmp_path / "my reviews.csv"
    with open(reviews, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows([ex.text, "pos" if ex.label else "neg"] for ex in generate_sentiment(60, seed=1))
    bad = tmp_path / "bad.csv"
    bad.write_text("words,label\nnice,1\n")
    dash_duo.start_server(create_app(tmp_path / "data"))
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/new?task=sentiment-lstm", timeout=30)
    dash_duo.wait_for_element(f"#{NEW_UPLOAD} input[type=file]", timeout=30)

    dash_duo.find_element(f"#{NEW_UPLOAD} input[type=file]").send_keys(str(bad))
    feedback = css_id(ids.NEW_FEEDBACK, field="data_file")
    until(lambda: "bad.csv: no column 'text'" in (js_text(dash_duo, feedback) or ""), timeout=20,
          msg=lambda: f"the upload's problem was not shown (field says {js_text(dash_duo, feedback)!r})")
    assert not js_enabled(dash_duo, f"#{ids.NEW_START}")

    dash_duo.find_element(f"#{NEW_UPLOAD} input[type=file]").send_keys(str(reviews))
    until(lambda: js_enabled(dash_duo, f"#{ids.NEW_START}"), timeout=20,
          msg=lambda: f"Start stayed disabled (data file: {js_text(dash_duo, feedback)!r}, "
                      f"upload: {js_text(dash_duo, '#' + NEW_UPLOAD_STATUS)!r})")
    chosen = css_id(ids.NEW_FIELD, field="data_file")
    assert "my reviews.csv" in js_text(dash_duo, chosen)
    digest = hashlib.sha256(reviews.read_bytes()).hexdigest()
    assert (tmp_path / "data" / "uploads" / f"{digest}.csv").read_bytes() == reviews.read_bytes()
    assert dash_duo.get_logs() == []
