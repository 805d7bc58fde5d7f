"""The JSON API (estimates)."""
from django.urls import path

from finetune import api

app_name = "api"
urlpatterns = [
    path("estimates", api.estimates_create, name="estimates"),
]
