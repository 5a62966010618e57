"""The signed download's name: the upload's own, safe in a header (RFC 6266), never a path."""

from __future__ import annotations

import pytest

from app.routes.download_name import MAX_STEM_CHARS, content_disposition


@pytest.mark.parametrize(
    ("upload", "expected"),
    [
        ("photo.jpg", 'attachment; filename="photo.signed.jpg"'),
        ("photo", 'attachment; filename="photo.signed.jpg"'),
        ("../../etc/passwd", 'attachment; filename="passwd.signed.jpg"'),
        ("C:\\Users\\me\\holiday.png", 'attachment; filename="holiday.signed.jpg"'),
        ('say "cheese".jpg', 'attachment; filename="say cheese.signed.jpg"'),
        ("in\r\njected\x00.jpg", 'attachment; filename="injected.signed.jpg"'),
        ("archive.tar.jpg", 'attachment; filename="archive.tar.signed.jpg"'),
        (".hidden", 'attachment; filename="hidden.signed.jpg"'),
        ("", 'attachment; filename="signed.jpg"'),
        (None, 'attachment; filename="signed.jpg"'),
        ("../", 'attachment; filename="signed.jpg"'),
    ],
)
def test_the_upload_name_made_safe(upload: str | None, expected: str) -> None:
    assert content_disposition(upload, "jpg") == expected


def test_non_ascii_names_travel_in_filename_star() -> None:
    value = content_disposition("фото.jpg", "jpg")
    assert value == (
        "attachment; filename=\"____.signed.jpg\"; filename*=UTF-8''%D1%84%D0%BE%D1%82%D0%BE.signed.jpg"
    )
    assert value.isascii()
    assert "filename*" not in content_disposition("photo.jpg", "jpg")  # negative control


def test_the_extension_is_the_detected_type_and_the_stem_is_bounded() -> None:
    assert content_disposition("x.jpg", "png") == 'attachment; filename="x.signed.png"'
    long = content_disposition("a" * 1000 + ".jpg", "c2pa")
    assert long == f'attachment; filename="{"a" * MAX_STEM_CHARS}.signed.c2pa"'
