from django.utils.translation import gettext_lazy as _
from rest_framework import serializers


class RiskStatusOutputSerializer(serializers.Serializer):
    under_review = serializers.BooleanField(help_text=_("Whether the account is under review."))
    earning_paused = serializers.BooleanField(help_text=_("Whether new points are refused while it is reviewed."))
    spending_paused = serializers.BooleanField(help_text=_("Whether spending is refused while it is reviewed."))
    message = serializers.CharField(help_text=_("What to tell the member; never which rule or why."))
