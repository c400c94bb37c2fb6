import pytest

from governance.core.actor import Actor


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def eager_celery(settings):
    """Tasks run in-process (the embedded default), whatever CELERY_BROKER_URL says; the
    real-worker test switches this off for itself."""
    from governance.celery import app as celery_app

    conf = celery_app.conf
    saved = conf.task_always_eager, conf.task_eager_propagates
    settings.CELERY_TASK_ALWAYS_EAGER = True
    conf.task_always_eager, conf.task_eager_propagates = True, True
    yield
    conf.task_always_eager, conf.task_eager_propagates = saved


@pytest.fixture
def system_actor():
    return Actor.system("tests")


@pytest.fixture
def source(db):
    from tests.factories import IdentitySourceFactory

    return IdentitySourceFactory(name="Test Entra")


@pytest.fixture
def superuser(db):
    from tests.factories import UserFactory

    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client
