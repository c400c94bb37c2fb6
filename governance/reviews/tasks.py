from celery import shared_task


@shared_task(name="reviews.build_population", ignore_result=True)
def build_population(campaign_id: int) -> None:
    """Build a launching campaign's snapshot; returns quietly when it is not launching."""
    from governance.reviews.services import build_population as build

    build(campaign_id)
