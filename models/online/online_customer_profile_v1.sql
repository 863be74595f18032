{{ featurekit.online_table(ref('customer_profile', v=1)) }}
