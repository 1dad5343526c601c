"""factory_boy builders that keep relations consistent."""

import factory
from django.contrib.auth import get_user_model

from labeling.models import Item, Membership, Project, Response

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def saved(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"project-{n}")
    title = factory.LazyAttribute(lambda project: project.slug.title())
    overlap = 1
    guidelines = "Pick the **better** answer."
    license = "cc-by-4.0"  # chosen by a manager; a project made without one has none ("not set")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.ANNOTATOR


class ItemFactory(factory.django.DjangoModelFactory):
    """An item with two responses from two models; `target` follows the project's overlap."""

    class Meta:
        model = Item
        skip_postgeneration_save = True

    project = factory.SubFactory(ProjectFactory)
    external_id = factory.Sequence(lambda n: f"item-{n}")
    prompt = factory.Sequence(lambda n: [{"role": "user", "content": f"Question number {n}?"}])
    target = factory.LazyAttribute(lambda item: item.project.initial_target)

    @factory.post_generation
    def responses(item, create, extracted, **kwargs):
        if not create:
            return
        contents = extracted or [f"Answer one to {item.external_id}", f"Answer two to {item.external_id}"]
        models = ["model-a", "model-b", "model-c", "model-d", "model-e", "model-f", "model-g", "model-h"]
        Response.objects.bulk_create(
            Response(item=item, position=position, model=models[position], content=content)
            for position, content in enumerate(contents)
        )
