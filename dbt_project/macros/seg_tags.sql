{#- The field catalogue for rule-based tags: name -> number | text | boolean. Every name is a
    column of int_tag_user_features. Keep in step with crmflow/tags.py FIELDS (a pytest checks
    that every catalogue field reaches int_tag_features). -#}
{% macro seg_tag_fields() -%}
{{ return({
    'order_count': 'number',
    'revenue': 'number',
    'days_since_last_activity': 'number',
    'days_since_last_purchase': 'number',
    'employees': 'number',
    'customer_type': 'text',
    'country': 'text',
    'city': 'text',
    'locale': 'text',
    'timezone': 'text',
    'acquisition_channel': 'text',
    'industry': 'text',
    'gender': 'text',
    'favourite_category': 'text',
    'email_opt_in': 'boolean',
    'sms_opt_in': 'boolean',
    'push_opt_in': 'boolean',
    'days_since_registration': 'number',
    'age_years': 'number',
    'has_email': 'boolean',
    'has_phone': 'boolean',
    'has_push_token': 'boolean',
    'lifecycle_stage': 'text',
    'rfm_segment': 'text',
    'value_tier': 'text',
    'b2b_grade': 'text',
    'mobile_only': 'boolean',
    'birthday_this_month': 'boolean',
    'discount_order_share': 'number',
    'days_since_unconverted_cart_abandon': 'number',
}) }}
{%- endmacro %}

{#- Machine-friendly segment name from a label: 'At Risk' -> 'at_risk'. -#}
{% macro seg_slug(column) -%}
    replace(lower(trim({{ column }})), ' ', '_')
{%- endmacro %}
