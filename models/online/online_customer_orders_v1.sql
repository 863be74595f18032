{{ featurekit.online_table(ref('customer_orders', v=1)) }}
