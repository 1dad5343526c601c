from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from labeling.api import api

urlpatterns = [
    # First: the API's requests are the most frequent, and the resolver tries patterns in order.
    path("api/", api.urls),
    # Outside the app's namespace: LOGIN_URL and LOGOUT_REDIRECT_URL (feedback/settings.py) name them.
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("labeling.urls")),
    path("admin/", admin.site.urls),
]
