from rest_framework import serializers

from settlement.models import LineKind, SettlementLine, SourceKind


class StatementLineSerializer(serializers.ModelSerializer):
    period = serializers.SerializerMethodField(help_text="The month, YYYY-MM (group time zone).")
    kind = serializers.ChoiceField(choices=LineKind.choices, read_only=True)
    payer = serializers.CharField(source="payer.code", read_only=True, help_text="The BU that owes (or whose liability).")
    payee = serializers.CharField(source="payee.code", read_only=True, allow_null=True,
                                  help_text="The BU that is owed (inter-BU clearing); null otherwise.")
    merchant = serializers.CharField(source="merchant.code", read_only=True, allow_null=True,
                                     help_text="The merchant that is owed (coupon and payment lines); null otherwise.")
    amount_cny = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)
    source = serializers.ChoiceField(choices=SourceKind.choices, read_only=True,
                                     help_text="What the line sums: postings, write-offs or payment events.")
    closed_at = serializers.DateTimeField(source="run.closed_at", read_only=True)

    class Meta:
        model = SettlementLine
        fields = ["id", "period", "kind", "payer", "payee", "merchant", "points", "amount_cny", "source", "source_count",
                  "first_source_id", "last_source_id", "closed_at"]
        read_only_fields = fields

    def get_period(self, line) -> str:
        return f"{line.run.period:%Y-%m}"
