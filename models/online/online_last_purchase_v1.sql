{{ featurekit.online_table(ref('last_purchase', v=1)) }}
