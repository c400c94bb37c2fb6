from rest_framework.routers import DefaultRouter

from governance.nhi.api import views

router = DefaultRouter()
router.register("nhis", views.NonHumanIdentityViewSet, basename="nhi")
router.register("credentials", views.CredentialViewSet, basename="credential")
router.register("rotation-tasks", views.RotationTaskViewSet, basename="rotation-task")

urlpatterns = router.urls
