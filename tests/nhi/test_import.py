"""CSV import: the preview writes nothing, confirming applies only the good rows (each
whole or not at all), and a file that cannot be read changes nothing."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.nhi import imports
from governance.nhi.models import NonHumanIdentity, OwnershipChange
from tests.factories import ApplicationFactory, IdentityFactory, NonHumanIdentityFactory

pytestmark = pytest.mark.django_db
URL = reverse("admin:nhi_nonhumanidentity_import")


@pytest.fixture
def people():
    IdentityFactory(user_name="olga@northwind.example")
    IdentityFactory(user_name="pete@northwind.example")
    IdentityFactory(user_name="gone@northwind.example", active=False)
    ApplicationFactory(name="Payments")


GOOD_AND_BAD = (
    "name,kind,owner,application,consumers,environment,source_created_at\n"
    "pay-sync,service_account,olga@northwind.example,Payments,billing;reports,production,"
    "2024-01-31\n"
    "pay-bot,robot,olga@northwind.example,,,,\n"
    "pay-orphan,bot,gone@northwind.example,,,,\n"
    "pay-api,API client / key,PETE@northwind.example,Nowhere,,,\n"
    "pay-sync,bot,pete@northwind.example,,,,\n"
    ",bot,pete@northwind.example,,,,\n"
    "pay-date,bot,pete@northwind.example,,,,31/01/2024\n"
)


def _state():
    return (
        NonHumanIdentity.objects.count(),
        OwnershipChange.objects.count(),
        AuditEvent.objects.count(),
    )


def test_preview_judges_each_row_and_writes_nothing(people, django_assert_max_num_queries):
    rows = imports.parse(GOOD_AND_BAD.encode())
    before = _state()
    with django_assert_max_num_queries(40):
        results = imports.preview(rows)
    assert _state() == before
    table = {(r.line, r.action): r.messages for r in results}
    assert [(r.line, r.action) for r in results] == [
        (2, "create"),
        (3, "error"),
        (4, "error"),
        (5, "error"),
        (6, "error"),
        (7, "error"),
        (8, "error"),
    ]
    assert "kind 'robot'" in table[(3, "error")][0]
    assert "not an active person" in table[(4, "error")][0]
    assert "no application named 'Nowhere'" in table[(5, "error")][0]
    assert "more than once" in table[(6, "error")][0]
    assert "name is required." in table[(7, "error")]
    assert "is not a date" in table[(8, "error")][0]


def test_apply_writes_only_the_good_rows(people):
    existing = NonHumanIdentityFactory(name="legacy-job", platform="cron")
    text = GOOD_AND_BAD + "legacy-job,,pete@northwind.example,,,,\n"
    results = imports.apply(actor=Actor.system("tests"), rows=imports.parse(text.encode()))
    assert [r.action for r in results].count("created") == 1
    assert [r.action for r in results].count("updated") == 1
    created = NonHumanIdentity.objects.get(name="pay-sync")
    assert created.consumers == ["billing", "reports"]
    assert created.application.name == "Payments"
    assert created.source_created_at.date().isoformat() == "2024-01-31"
    existing.refresh_from_db()
    assert existing.owner.user_name == "pete@northwind.example"
    assert existing.platform == "cron"  # empty cells leave values alone
    assert OwnershipChange.objects.filter(nhi=existing, reason="CSV import").exists()
    assert set(NonHumanIdentity.objects.values_list("name", flat=True)) == {
        "pay-sync",
        "legacy-job",
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe\x00n\x00a", "not UTF-8"),
        (b"name;kind;owner\nx;bot;y\n", "Wrong headers"),
        (b"name,kind,owner,secret\nx,bot,y,z\n", r"unknown column\(s\): secret"),
        (b"", "empty"),
        (b"name,kind,owner\n", "no rows"),
        (b"name,kind,owner\n" + b"a,bot,b\n" * (imports.MAX_IMPORT_ROWS + 1), "at most"),
        (b"x" * (imports.MAX_IMPORT_BYTES + 1), "at most"),
        (b"%PDF-1.4\x00\x01", "not"),
    ],
    ids=[
        "not-utf8",
        "semicolons",
        "unknown-column",
        "empty",
        "headers-only",
        "too-many-rows",
        "too-large",
        "binary",
    ],
)
def test_unreadable_file_is_refused_whole(data, message):
    with pytest.raises(imports.ImportFileError, match=message):
        imports.parse(data)


def test_admin_upload_preview_then_confirm(people, admin_client):
    before = _state()
    upload = SimpleUploadedFile("nhis.csv", GOOD_AND_BAD.encode(), content_type="text/csv")
    preview = admin_client.post(URL, {"stage": "preview", "file": upload})
    assert preview.status_code == 200
    assert _state() == before
    assert b"Preview: nothing has been written yet. 1 of 7 rows" in preview.content
    csv_text = preview.context["csv_text"]
    done = admin_client.post(URL, {"stage": "apply", "csv_text": csv_text})
    assert done.status_code == 200
    assert NonHumanIdentity.objects.filter(name="pay-sync").exists()
    assert NonHumanIdentity.objects.count() == 1
    assert b"Import finished" in done.content


def test_admin_bad_file_changes_nothing(people, admin_client):
    before = _state()
    upload = SimpleUploadedFile("nhis.csv", b"\xff\xfe garbage", content_type="text/csv")
    response = admin_client.post(URL, {"stage": "preview", "file": upload})
    assert response.status_code == 200
    assert b"not UTF-8" in response.content and b"Nothing was imported" in response.content
    assert admin_client.post(URL, {"stage": "apply", "csv_text": "a,b\n1,2"}).status_code == 200
    assert admin_client.post(URL, {"stage": "preview"}).status_code == 200
    assert _state() == before


def test_import_needs_add_and_change_permission(client):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="owner", roles=["App owner"]))
    assert client.get(URL).status_code == 403
    client.force_login(UserFactory(username="auditor", roles=["Auditor"]))
    assert client.get(URL).status_code == 403
