"""Create the viewer/operator/admin groups with their permissions."""

from __future__ import annotations

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_roles(apps, schema_editor):
    # Permissions are normally created after migrate; make sure they exist now so the groups
    # get them on a fresh database. The post_migrate sync keeps them current afterwards.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    product = ("missioncontrol", "tasks", "agents", "gateways", "billing", "webhooks")
    view = Permission.objects.filter(content_type__app_label__in=product, codename__startswith="view_")
    viewer, _ = Group.objects.get_or_create(name="viewer")
    viewer.permissions.set(view)
    operator, _ = Group.objects.get_or_create(name="operator")
    operator.permissions.set(view)
    admin, _ = Group.objects.get_or_create(name="admin")
    admin.permissions.set(Permission.objects.all())


def drop_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["viewer", "operator", "admin"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("missioncontrol", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, drop_roles)]
