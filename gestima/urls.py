"""URL configuration: the admin is the application; the API serves estimates; /health/ answers load balancers."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from gestima import rq_dashboard, views

rq_dashboard.install()

admin.site.site_header = "Gestima Studio"
admin.site.site_title = "Gestima Studio"
admin.site.index_title = "Curate data, train and evaluate models"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/", include("finetune.urls")),
    path("health/live", views.health_live, name="health-live"),
    path("health/ready", views.health_ready, name="health-ready"),
    path("health/detail", views.health_detail, name="health-detail"),
]
