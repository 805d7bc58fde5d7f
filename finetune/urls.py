"""The JSON API (estimates)."""

from django.urls import path, re_path

from finetune import api

app_name = "api"
urlpatterns = [
    path("estimates", api.estimates_create, name="estimates"),
    path("estimates/<int:pk>", api.estimate_detail, name="estimate"),
    re_path(r"^.*$", api.not_found),  # JSON, not the site's HTML 404 page
]
