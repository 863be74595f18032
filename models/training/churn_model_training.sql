-- depends_on: {{ ref('customer_profile', v=1) }}
-- depends_on: {{ ref('customer_orders', v=1) }}
-- depends_on: {{ ref('last_purchase', v=1) }}
-- depends_on: {{ ref('support_tickets', v=1) }}
-- depends_on: {{ ref('login_activity', v=1) }}
{{ featurekit.training_set(ref('stg_churn_labels'), feature_set='churn_model') }}
